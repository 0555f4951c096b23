# ModelGateway policy for OPA: the same rules as the built-in engine
# (ModelGateway.Policy.Rules/BuiltIn/BuiltInPolicyEngine.cs), with the same deny reasons, word for word.
#
# Queried by the Policy service through the Data API: POST /v1/data/gateway/decision with
# {"input": <PolicyInput fields> + {"policy": <TenantPolicy>}} (see docs/policy.md). The answer is
# {"allow": bool, "reasons": [string], "max_output_tokens": number|null}.
#
# Conventions shared with the built-in engine:
# - a list that is absent or empty places no restriction;
# - a rule that cannot be evaluated (unknown time zone, invalid pattern, missing text or provider) denies;
# - reasons are sorted; the output-token cap never denies, it lowers max_output_tokens.
#
# OPA 1.0 syntax (`if`, `contains`, `in` are keywords without imports).
package gateway

# The tenant's policy: sent by the gateway in input.policy; a deployment may instead keep policies in
# OPA's data document under gateway_tenants.<tenant id>.
policy := p if {
	p := input.policy
	is_object(p)
} else := p if {
	p := data.gateway_tenants[input.tenant]
} else := {}

default token_cap := null

decision := {
	"allow": count(deny) == 0,
	"reasons": sort(deny),
	"max_output_tokens": token_cap,
}

# --- required input -----------------------------------------------------------------------------------

deny contains msg if {
	some field in ["tenant", "model", "time"]
	not is_string(input[field])
	msg := sprintf("input is missing required field '%s'", [field])
}

# --- models ---------------------------------------------------------------------------------------------

deny contains msg if {
	allowed := object.get(policy, "allowed_models", [])
	count(allowed) > 0
	not any_match(input.model, allowed)
	msg := sprintf("model '%s' is not in the tenant's allowed models", [input.model])
}

deny contains msg if {
	some pattern in object.get(policy, "denied_models", [])
	matches(input.model, pattern)
	msg := sprintf("model '%s' is denied for this tenant", [input.model])
}

# --- providers ------------------------------------------------------------------------------------------

provider_rules if count(object.get(policy, "allowed_providers", [])) > 0

provider_rules if count(object.get(policy, "denied_providers", [])) > 0

deny contains "provider is required by the tenant's provider rules but was not given" if {
	provider_rules
	not is_string(input.provider)
}

deny contains msg if {
	allowed := object.get(policy, "allowed_providers", [])
	count(allowed) > 0
	is_string(input.provider)
	not any_match(input.provider, allowed)
	msg := sprintf("provider '%s' is not in the tenant's allowed providers", [input.provider])
}

deny contains msg if {
	is_string(input.provider)
	some pattern in object.get(policy, "denied_providers", [])
	matches(input.provider, pattern)
	msg := sprintf("provider '%s' is denied for this tenant", [input.provider])
}

# Exact, case-sensitive; an entry ending in "*" matches by prefix ("*" alone matches everything).
matches(value, pattern) if value == pattern

matches(value, pattern) if {
	endswith(pattern, "*")
	startswith(value, trim_suffix(pattern, "*"))
}

any_match(value, entries) if {
	some entry in entries
	matches(value, entry)
}

# --- time-of-day windows --------------------------------------------------------------------------------

windows := object.get(policy, "time_windows", [])

time_zone := tz if {
	tz := policy.time_zone
	is_string(tz)
	tz != ""
} else := "UTC"

deny contains "request time is outside the tenant's allowed time windows" if {
	count(windows) > 0
	not in_any_window
}

# Undefined (so the rule above denies) when the time does not parse or the time zone is unknown.
in_any_window if {
	ns := time.parse_rfc3339_ns(input.time)
	[hour, minute, _] := time.clock([ns, time_zone])
	now := (hour * 60) + minute
	today := lower(substring(time.weekday([ns, time_zone]), 0, 3))
	some window in windows
	window_day(window, today)
	start := minutes(window.start)
	start < 1440
	in_range(now, start, minutes(window.end))
}

# No days listed: every day. Otherwise the local day of the moment tested must be listed (any case).
window_day(window, _) if count(object.get(window, "days", [])) == 0

window_day(window, today) if {
	some day in window.days
	lower(day) == today
}

# "HH:MM" (or "H:MM") to minutes since midnight, 00:00 to 24:00; undefined when malformed.
minutes(text) := m if {
	parts := split(text, ":")
	count(parts) == 2
	count(parts[1]) == 2
	hours := to_number(parts[0])
	mins := to_number(parts[1])
	hours >= 0
	mins >= 0
	mins <= 59
	m := (hours * 60) + mins
	m <= 1440
}

# Start inclusive, end exclusive; an end at or before the start wraps past midnight.
in_range(now, start, end) if {
	start < end
	now >= start
	now < end
}

in_range(now, start, end) if {
	start >= end
	now >= start
}

in_range(now, start, end) if {
	start >= end
	now < end
}

# --- deny patterns on the request text ------------------------------------------------------------------

patterns := object.get(policy, "deny_patterns", [])

deny contains "request text is required by the tenant's deny patterns but was not given" if {
	count(patterns) > 0
	not is_string(input.text)
}

deny contains msg if {
	some i, pattern in patterns
	not valid_pattern(pattern)
	msg := sprintf("deny pattern #%d is invalid", [i + 1])
}

deny contains msg if {
	some i, pattern in patterns
	valid_pattern(pattern)
	is_string(input.text)
	regex.match(pattern, input.text)
	msg := sprintf("request text matches deny pattern #%d", [i + 1])
}

valid_pattern(pattern) if {
	is_string(pattern)
	regex.is_valid(pattern)
}

# --- cost and output tokens -----------------------------------------------------------------------------

deny contains "estimated cost exceeds the tenant's maximum per request" if {
	cap := object.get(policy, "max_usd_per_request", null)
	is_number(cap)
	is_number(input.estimated_cost_usd)
	input.estimated_cost_usd > cap
}

# A cap lowers a larger (or missing) request limit, as the gateway always clamped; it never denies.
token_cap := cap if {
	cap := object.get(policy, "max_output_tokens", null)
	is_number(cap)
	cap > 0
	not within_cap(cap)
}

within_cap(cap) if {
	requested := input.max_output_tokens
	is_number(requested)
	requested <= cap
}
