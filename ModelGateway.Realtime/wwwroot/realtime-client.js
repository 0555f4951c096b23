// ModelGateway realtime client: chat over a WebRTC data channel (protocol in docs/realtime.md).
// Used by the demo page and by the browser tests, so what the tests prove is what the demo runs.

export class RealtimeError extends Error {
  constructor(status, error) {
    super(error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.error = error;
  }
}

async function errorOf(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  return new RealtimeError(response.status, body?.error ?? { message: `HTTP ${response.status}` });
}

// We answer as ICE-lite without trickle: the browser's candidates (relay ones included) must be in the offer.
function gatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise(resolve => {
    const done = () => { clearTimeout(timer); pc.removeEventListener('icegatheringstatechange', check); resolve(); };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

export class RealtimeClient {
  #pending = new Map();
  #next = 0;

  constructor({ apiKey, baseUrl = '', iceTransportPolicy = 'all', gatherTimeoutMs = 5000 }) {
    this.apiKey = apiKey;
    this.baseUrl = baseUrl;
    this.iceTransportPolicy = iceTransportPolicy;
    this.gatherTimeoutMs = gatherTimeoutMs;
    this.sessionId = null;
    this.timings = {};
  }

  async connect() {
    const t0 = performance.now();
    const auth = { Authorization: `Bearer ${this.apiKey}` };
    const ice = await fetch(`${this.baseUrl}/realtime/ice-servers`, { headers: auth });
    if (!ice.ok) throw await errorOf(ice);
    const { iceServers } = await ice.json();

    const pc = this.pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: this.iceTransportPolicy });
    const channel = this.channel = pc.createDataChannel('chat');
    channel.onmessage = e => this.#onMessage(e.data);
    channel.onclose = () => this.#failAll(new RealtimeError(0, { message: 'channel closed' }));
    const opened = new Promise((resolve, reject) => {
      channel.onopen = resolve;
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === 'failed') reject(new RealtimeError(0, { message: 'connection failed' }));
      };
    });

    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc, this.gatherTimeoutMs);
    const response = await fetch(`${this.baseUrl}/realtime/offer`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'offer', sdp: pc.localDescription.sdp }),
    });
    if (!response.ok) throw await errorOf(response);
    this.sessionId = response.headers.get('X-Realtime-Session-Id');
    await pc.setRemoteDescription(await response.json());
    await opened;
    this.timings.connectMs = performance.now() - t0;
    return this;
  }

  // Sends one chat request; onChunk sees each chat.completion.chunk; resolves with the chat.completion.
  chat(request, { onChunk } = {}) {
    const id = request.id ?? `c${++this.#next}`;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { onChunk, resolve, reject });
      try {
        this.channel.send(JSON.stringify({ ...request, id }));
      } catch (e) {
        this.#pending.delete(id);
        reject(e);
      }
    });
  }

  // Sends raw text on the channel and resolves with the next message for the given id (for protocol tests).
  sendRaw(text, id) {
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, raw: true });
      this.channel.send(text);
    });
  }

  close() {
    this.channel?.close();
    this.pc?.close();
  }

  #onMessage(text) {
    const message = JSON.parse(text);
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    if (pending.raw) {
      this.#pending.delete(message.id);
      pending.resolve(message);
    } else if (message.type === 'chunk') {
      pending.onChunk?.(message.chunk);
    } else if (message.type === 'completion') {
      this.#pending.delete(message.id);
      pending.resolve(message.completion);
    } else if (message.type === 'error') {
      this.#pending.delete(message.id);
      pending.reject(new RealtimeError(message.status, message.error));
    }
  }

  #failAll(error) {
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      pending.reject(error);
    }
  }
}
