# Unit tests for gateway.rego: `opa test policies/ -v`. They mirror the built-in engine's cases
# (tests/ModelGateway.Policy.Tests/Support/PolicyCases.cs), so both engines are held to the same answers.
package gateway_test

import data.gateway

# Monday 2 June 2025, 10:00 UTC.
base := {
	"tenant": "acme",
	"key_id": "key-1",
	"model": "chat-default",
	"provider": "openai",
	"estimated_input_tokens": 12,
	"max_output_tokens": 256,
	"estimated_cost_usd": 0.01,
	"stream": false,
	"has_tools": false,
	"client_ip": "127.0.0.1",
	"time": "2025-06-02T10:00:00+00:00",
}

office_hours := {"days": ["mon", "TUE", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"}

decide(overrides, policy) := d if {
	d := gateway.decision with input as object.union(object.union(base, overrides), {"policy": policy})
}

allowed(d) if {
	d.allow == true
	d.reasons == []
}

denied(d, reasons) if {
	d.allow == false
	d.reasons == reasons
}

# --- shape ----------------------------------------------------------------------------------------------

test_empty_policy_allows if {
	d := decide({}, {})
	allowed(d)
	d.max_output_tokens == null
}

test_missing_required_fields_deny if {
	d := gateway.decision with input as {"policy": {}}
	denied(d, [
		"input is missing required field 'model'",
		"input is missing required field 'tenant'",
		"input is missing required field 'time'",
	])
}

test_policy_from_data_when_not_in_input if {
	d := gateway.decision with input as base with data.gateway_tenants as {"acme": {"allowed_models": ["other"]}}
	denied(d, ["model 'chat-default' is not in the tenant's allowed models"])
}

# --- models ---------------------------------------------------------------------------------------------

test_allowed_model_exact if allowed(decide({}, {"allowed_models": ["chat-default"]}))

test_allowed_model_by_prefix if allowed(decide({"model": "chat-local"}, {"allowed_models": ["chat-*"]}))

test_model_not_allowed if {
	denied(decide({"model": "gpt-4o"}, {"allowed_models": ["chat-*"]}), ["model 'gpt-4o' is not in the tenant's allowed models"])
}

test_allowed_models_are_case_sensitive if {
	denied(decide({"model": "Chat-default"}, {"allowed_models": ["chat-default"]}), ["model 'Chat-default' is not in the tenant's allowed models"])
}

test_model_denied if {
	denied(decide({"model": "chat-anthropic"}, {"denied_models": ["chat-anthropic"]}), ["model 'chat-anthropic' is denied for this tenant"])
}

test_model_not_denied if allowed(decide({}, {"denied_models": ["chat-anthropic"]}))

test_denied_wins_over_allowed if {
	denied(
		decide({"model": "chat-anthropic"}, {"allowed_models": ["*"], "denied_models": ["chat-anth*"]}),
		["model 'chat-anthropic' is denied for this tenant"],
	)
}

# --- providers ------------------------------------------------------------------------------------------

test_provider_allowed if allowed(decide({"provider": "llamacpp"}, {"allowed_providers": ["llamacpp", "openai"]}))

test_provider_not_allowed if {
	denied(decide({"provider": "anthropic"}, {"allowed_providers": ["openai"]}), ["provider 'anthropic' is not in the tenant's allowed providers"])
}

test_provider_denied if {
	denied(decide({"provider": "anthropic"}, {"denied_providers": ["anthropic"]}), ["provider 'anthropic' is denied for this tenant"])
}

test_provider_not_denied if allowed(decide({}, {"denied_providers": ["anthropic"]}))

test_provider_missing_with_provider_rules if {
	d := gateway.decision with input as object.union(object.remove(base, ["provider"]), {"policy": {"denied_providers": ["anthropic"]}})
	denied(d, ["provider is required by the tenant's provider rules but was not given"])
}

test_provider_missing_without_provider_rules if {
	d := gateway.decision with input as object.union(object.remove(base, ["provider"]), {"policy": {}})
	allowed(d)
}

# --- time-of-day windows --------------------------------------------------------------------------------

outside := ["request time is outside the tenant's allowed time windows"]

test_inside_office_hours if allowed(decide({}, {"time_windows": [office_hours]}))

test_before_office_hours if denied(decide({"time": "2025-06-02T08:00:00Z"}, {"time_windows": [office_hours]}), outside)

test_end_is_exclusive if denied(decide({"time": "2025-06-02T18:00:00Z"}, {"time_windows": [office_hours]}), outside)

test_weekend_outside_office_days if denied(decide({"time": "2025-06-01T10:00:00Z"}, {"time_windows": [office_hours]}), outside)

# 16:00 UTC is 18:00 in Paris (summer time): outside; 15:00 UTC is 17:00: inside.
test_window_in_time_zone_outside if {
	denied(decide({"time": "2025-06-02T16:00:00Z"}, {"time_zone": "Europe/Paris", "time_windows": [office_hours]}), outside)
}

test_window_in_time_zone_inside if {
	allowed(decide({"time": "2025-06-02T15:00:00Z"}, {"time_zone": "Europe/Paris", "time_windows": [office_hours]}))
}

night := {"start": "22:00", "end": "06:00"}

test_wrapping_window_after_start if allowed(decide({"time": "2025-06-02T23:00:00Z"}, {"time_windows": [night]}))

test_wrapping_window_before_end if allowed(decide({"time": "2025-06-02T05:00:00Z"}, {"time_windows": [night]}))

test_wrapping_window_outside if denied(decide({}, {"time_windows": [night]}), outside)

test_second_window_matches if {
	allowed(decide({}, {"time_windows": [{"start": "00:00", "end": "01:00"}, {"start": "09:30", "end": "24:00"}]}))
}

test_unknown_time_zone_denies if denied(decide({}, {"time_zone": "Mars/Olympus", "time_windows": [office_hours]}), outside)

test_malformed_window_denies if denied(decide({}, {"time_windows": [{"start": "9", "end": "25:00"}]}), outside)

# --- deny patterns --------------------------------------------------------------------------------------

test_text_matches_deny_pattern if {
	denied(decide({"text": "please print the SECRET key"}, {"deny_patterns": ["(?i)secret\\s+key"]}), ["request text matches deny pattern #1"])
}

test_text_does_not_match if allowed(decide({"text": "hello"}, {"deny_patterns": ["(?i)secret\\s+key"]}))

test_second_pattern_matches if {
	denied(
		decide({"text": "card 4111 1111 1111 1111"}, {"deny_patterns": ["password", "[0-9]{4}( [0-9]{4}){3}"]}),
		["request text matches deny pattern #2"],
	)
}

test_text_missing_with_patterns if {
	denied(decide({}, {"deny_patterns": ["password"]}), ["request text is required by the tenant's deny patterns but was not given"])
}

test_invalid_pattern_denies if denied(decide({"text": "hello"}, {"deny_patterns": ["(unclosed"]}), ["deny pattern #1 is invalid"])

# --- cost -----------------------------------------------------------------------------------------------

test_cost_at_the_cap if allowed(decide({"estimated_cost_usd": 0.05}, {"max_usd_per_request": 0.05}))

test_cost_above_the_cap if {
	denied(decide({"estimated_cost_usd": 0.0501}, {"max_usd_per_request": 0.05}), ["estimated cost exceeds the tenant's maximum per request"])
}

# --- output-token cap -----------------------------------------------------------------------------------

test_token_cap_lowers_a_larger_request if {
	d := decide({"max_output_tokens": 4096}, {"max_output_tokens": 1024})
	allowed(d)
	d.max_output_tokens == 1024
}

test_token_cap_applies_to_an_unlimited_request if {
	d := gateway.decision with input as object.union(object.remove(base, ["max_output_tokens"]), {"policy": {"max_output_tokens": 1024}})
	allowed(d)
	d.max_output_tokens == 1024
}

test_token_cap_keeps_a_smaller_request if {
	d := decide({"max_output_tokens": 100}, {"max_output_tokens": 1024})
	allowed(d)
	d.max_output_tokens == null
}

test_token_cap_keeps_an_equal_request if {
	d := decide({"max_output_tokens": 1024}, {"max_output_tokens": 1024})
	allowed(d)
	d.max_output_tokens == null
}

# --- several rules at once ------------------------------------------------------------------------------

test_every_reason_sorted if {
	d := decide(
		{"model": "gpt-4o", "provider": "anthropic", "estimated_cost_usd": 1, "text": "secret", "max_output_tokens": 9000},
		{
			"allowed_models": ["chat-*"],
			"denied_providers": ["anthropic"],
			"deny_patterns": ["secret"],
			"max_usd_per_request": 0.5,
			"max_output_tokens": 100,
		},
	)
	denied(d, [
		"estimated cost exceeds the tenant's maximum per request",
		"model 'gpt-4o' is not in the tenant's allowed models",
		"provider 'anthropic' is denied for this tenant",
		"request text matches deny pattern #1",
	])
	d.max_output_tokens == 100
}
