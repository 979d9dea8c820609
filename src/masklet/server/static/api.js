// Thin client of the masklet HTTP API: JSON errors become Error(message), an API key from the
// page is sent as a bearer token, and propagation's Server-Sent Events are read from a POST.

const keyInput = () => document.getElementById("api-key");

export function authHeaders() {
  const key = keyInput().value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function check(response) {
  if (response.ok) return response;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body.error) message = body.error.message;
  } catch (_) { /* not JSON */ }
  if (response.status === 401) message += " (enter the API key at the top right)";
  const error = new Error(message);
  error.status = response.status;
  throw error;
}

export async function request(method, url, body) {
  const init = { method, headers: authHeaders() };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await check(await fetch(url, init));
  return response.status === 204 ? null : response.json();
}

export async function frameBitmap(sessionId, index) {
  const url = `/v1/sessions/${sessionId}/frames/${index}`;
  const response = await check(await fetch(url, { headers: authHeaders() }));
  return createImageBitmap(await response.blob());
}

// POST .../propagate and call onEvent(name, data) for every event until the stream ends.
export async function propagate(sessionId, body, onEvent, signal) {
  const response = await check(await fetch(`/v1/sessions/${sessionId}/propagate`, {
    method: "POST", signal,
    headers: { ...authHeaders(), "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}
