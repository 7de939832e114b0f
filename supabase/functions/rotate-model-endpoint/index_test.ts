// deno test supabase/functions/rotate-model-endpoint — no network, no std imports.
import { type Env, handle, MAX_SKEW_S, sign } from "./index.ts";

const NOW = 1_790_000_000;
const ENV: Env = {
  secret: "rotation-secret",
  template: "https://inference.example.com/v1/adapters/{adapter_id}",
  projectRef: "abcdefghijklmnop",
  accessToken: "sbp_test",
  appliedEventId: 10,
  apiUrl: "https://api.supabase.com",
};
const ROTATION = {
  event_id: 11,
  action: "promote",
  adapter_id: "6f1c1c3e-0000-4000-8000-000000000001",
  previous_prod: null,
  artifact_sha256: "a".repeat(64),
};

function check(condition: unknown, message: string): void {
  if (!condition) throw new Error(message);
}

async function request(payload: unknown, opts: { secret?: string; timestamp?: number } = {}) {
  const body = JSON.stringify(payload);
  const timestamp = String(opts.timestamp ?? NOW);
  return new Request("http://localhost/rotate-model-endpoint", {
    method: "POST",
    body,
    headers: {
      "X-Pria-Timestamp": timestamp,
      "X-Pria-Signature": await sign(opts.secret ?? ENV.secret, timestamp, body),
    },
  });
}

function recorder(status = 200) {
  const calls: { url: string; init?: RequestInit }[] = [];
  const fetchFn = (url: string, init?: RequestInit) => {
    calls.push({ url, init });
    return Promise.resolve(new Response("{}", { status }));
  };
  return { calls, fetchFn };
}

Deno.test("a signed promotion sets MODEL_ENDPOINT through the Management API", async () => {
  const { calls, fetchFn } = recorder();
  const env = { ...ENV };
  const response = await handle(await request(ROTATION), env, fetchFn, NOW);
  check(response.status === 200, `status ${response.status}`);
  check(env.appliedEventId === 11, "the applied event id advances");
  check(calls.length === 1, "one Management API call");
  check(
    calls[0].url === "https://api.supabase.com/v1/projects/abcdefghijklmnop/secrets",
    calls[0].url,
  );
  const secrets = JSON.parse(String(calls[0].init?.body));
  check(secrets[0].name === "MODEL_ENDPOINT", "MODEL_ENDPOINT set");
  check(secrets[0].value.endsWith(`/adapters/${ROTATION.adapter_id}`), secrets[0].value);
  check(secrets[1].value === "11", "event id recorded");
});

Deno.test("a forged signature is refused with 401 and nothing is called", async () => {
  const { calls, fetchFn } = recorder();
  const response = await handle(await request(ROTATION, { secret: "wrong" }), ENV, fetchFn, NOW);
  check(response.status === 401, `status ${response.status}`);
  check(calls.length === 0, "no call");
});

Deno.test("a replayed (stale) call is refused", async () => {
  const { calls, fetchFn } = recorder();
  const old = await request(ROTATION, { timestamp: NOW - MAX_SKEW_S - 1 });
  check((await handle(old, ENV, fetchFn, NOW)).status === 401, "stale refused");
  check(calls.length === 0, "no call");
});

Deno.test("an event older than the applied one changes nothing", async () => {
  const { calls, fetchFn } = recorder();
  const response = await handle(await request({ ...ROTATION, event_id: 9 }), ENV, fetchFn, NOW);
  check(response.status === 200, "accepted");
  check((await response.json()).rotated === false, "not rotated");
  check(calls.length === 0, "no call");
});

Deno.test("a malformed body is a 400", async () => {
  const { fetchFn } = recorder();
  const response = await handle(await request({ ...ROTATION, adapter_id: "x" }), ENV, fetchFn, NOW);
  check(response.status === 400, `status ${response.status}`);
});

Deno.test("a Management API failure answers 502 so pria-ml retries", async () => {
  const { fetchFn } = recorder(500);
  const response = await handle(await request(ROTATION), ENV, fetchFn, NOW);
  check(response.status === 502, `status ${response.status}`);
});
