import { RealtimeClient } from './realtime-client.js';

const $ = id => document.getElementById(id);
const key = $('key');
key.value = localStorage.getItem('mg-key') ?? '';
let client = null;
const history = [];

function add(kind, text) {
  const div = document.createElement('div');
  div.className = `msg ${kind}`;
  div.textContent = text;
  $('log').append(div);
  div.scrollIntoView({ block: 'end' });
  return div;
}

$('connect').onclick = async () => {
  client?.close();
  localStorage.setItem('mg-key', key.value);
  $('status').textContent = 'connecting…';
  try {
    client = await new RealtimeClient({ apiKey: key.value, iceTransportPolicy: $('relay').checked ? 'relay' : 'all' }).connect();
    $('status').textContent = `connected in ${client.timings.connectMs.toFixed(0)} ms`;
    $('prompt').disabled = $('send').disabled = false;
  } catch (e) {
    $('status').textContent = `failed: ${e.message}`;
  }
};

$('form').onsubmit = async e => {
  e.preventDefault();
  const text = $('prompt').value.trim();
  if (!text || !client) return;
  $('prompt').value = '';
  add('user', text);
  history.push({ role: 'user', content: text });
  const bubble = add('assistant', '');
  const started = performance.now();
  let first = null;
  try {
    const completion = await client.chat({ model: $('model').value, messages: history }, {
      onChunk: chunk => {
        first ??= performance.now() - started;
        bubble.textContent += chunk.choices?.[0]?.delta?.content ?? '';
      },
    });
    const message = completion.choices?.[0]?.message;
    history.push({ role: 'assistant', content: message?.content ?? '' });
    const meta = document.createElement('div');
    meta.className = 'meta';
    const usage = completion.usage ? `${completion.usage.prompt_tokens} + ${completion.usage.completion_tokens} tokens` : 'no usage';
    meta.textContent = `${completion.model} · first chunk ${first?.toFixed(0) ?? '–'} ms · ${usage}`;
    bubble.append(meta);
  } catch (err) {
    bubble.className = 'msg error';
    bubble.textContent = `${err.status ?? ''} ${err.message}`;
  }
};
