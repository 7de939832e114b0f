// rotate-model-endpoint: points MODEL_ENDPOINT at the adapter pria-ml just made prod.
//
// pria-ml (pria_ml/rotation.py) calls this function after every committed change of prod with
// a JSON body {event_id, action, adapter_id, previous_prod, dataset_date, artifact_uri,
// artifact_sha256, base_model} and two headers:
//   X-Pria-Timestamp: Unix seconds
//   X-Pria-Signature: v1=<hex HMAC-SHA256(PRIA_ROTATION_SECRET, "<timestamp>.<raw body>")>
// The function refuses unsigned, forged or stale (> 5 min) calls with 401, ignores an event
// older than the one already applied (calls can arrive out of order), and sets the project
// secrets MODEL_ENDPOINT and MODEL_ENDPOINT_EVENT_ID through the Supabase Management API.
// A failure answers 5xx so pria-ml retries with backoff.
//
// Environment (supabase secrets set ...):
//   PRIA_ROTATION_SECRET      shared with PRIA_ENDPOINT_ROTATION_SECRET on the pria-ml side
//   MODEL_ENDPOINT_TEMPLATE   e.g. https://inference.example.com/v1/adapters/{adapter_id}
//   SUPABASE_PROJECT_REF      the project whose secrets are rotated
//   SUPABASE_ACCESS_TOKEN     a Management API token allowed to write secrets
//   MODEL_ENDPOINT_EVENT_ID   set by this function; the last applied registry event
//   SUPABASE_API_URL          optional, default https://api.supabase.com (tests point it local)
//   PORT                      optional: serve on 127.0.0.1:PORT (local runs and tests)

export const MAX_SKEW_S = 300;

export interface Env {
  secret: string;
  template: string;
  projectRef: string;
  accessToken: string;
  appliedEventId: number;
  apiUrl: string;
}

export interface Rotation {
  event_id: number;
  action: "promote" | "rollback";
  adapter_id: string;
  artifact_sha256: string;
}

type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

function json(status: number, body: Record<string, unknown>): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export async function sign(secret: string, timestamp: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    new TextEncoder().encode(`${timestamp}.${body}`),
  );
  return `v1=${hex(mac)}`;
}

export async function verify(
  secret: string,
  timestamp: string | null,
  signature: string | null,
  body: string,
  nowS: number,
): Promise<string | null> {
  if (!timestamp || !signature) return "missing X-Pria-Timestamp or X-Pria-Signature";
  const sent = Number(timestamp);
  if (!Number.isInteger(sent) || Math.abs(nowS - sent) > MAX_SKEW_S) {
    return `timestamp ${timestamp} is more than ${MAX_SKEW_S} s from now`;
  }
  const expected = await sign(secret, timestamp, body);
  return constantTimeEqual(expected, signature) ? null : "signature does not match";
}

export function parseRotation(body: string): Rotation | string {
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(body);
  } catch {
    return "body is not JSON";
  }
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  if (!Number.isInteger(data.event_id)) return "event_id must be an integer";
  if (data.action !== "promote" && data.action !== "rollback") {
    return "action must be promote or rollback";
  }
  if (typeof data.adapter_id !== "string" || !uuid.test(data.adapter_id)) {
    return "adapter_id must be a UUID";
  }
  if (typeof data.artifact_sha256 !== "string" || !/^[0-9a-f]{64}$/.test(data.artifact_sha256)) {
    return "artifact_sha256 must be a hex sha256";
  }
  return data as unknown as Rotation;
}

export async function handle(
  req: Request,
  env: Env,
  fetchFn: Fetch = fetch,
  nowS: number = Math.floor(Date.now() / 1000),
): Promise<Response> {
  if (req.method !== "POST") return json(405, { error: "POST only" });
  const body = await req.text();
  const refused = await verify(
    env.secret,
    req.headers.get("X-Pria-Timestamp"),
    req.headers.get("X-Pria-Signature"),
    body,
    nowS,
  );
  if (refused) return json(401, { error: refused });
  const rotation = parseRotation(body);
  if (typeof rotation === "string") return json(400, { error: rotation });
  if (rotation.event_id <= env.appliedEventId) {
    return json(200, {
      rotated: false,
      reason: `event ${rotation.event_id} is not newer than ${env.appliedEventId}`,
    });
  }

  const endpoint = env.template.replaceAll("{adapter_id}", rotation.adapter_id);
  const answer = await fetchFn(`${env.apiUrl}/v1/projects/${env.projectRef}/secrets`, {
    method: "POST",
    headers: { Authorization: `Bearer ${env.accessToken}`, "Content-Type": "application/json" },
    body: JSON.stringify([
      { name: "MODEL_ENDPOINT", value: endpoint },
      { name: "MODEL_ENDPOINT_EVENT_ID", value: String(rotation.event_id) },
    ]),
  });
  if (!answer.ok) {
    // 502: pria-ml retries; the registry already holds the truth.
    return json(502, {
      error: `Management API answered ${answer.status}`,
      detail: await answer.text(),
    });
  }
  env.appliedEventId = rotation.event_id;
  return json(200, { rotated: true, model_endpoint: endpoint, event_id: rotation.event_id });
}

export function envFromDeno(): Env {
  const need = (name: string): string => {
    const value = Deno.env.get(name);
    if (!value) throw new Error(`${name} is not set`);
    return value;
  };
  return {
    secret: need("PRIA_ROTATION_SECRET"),
    template: need("MODEL_ENDPOINT_TEMPLATE"),
    projectRef: need("SUPABASE_PROJECT_REF"),
    accessToken: need("SUPABASE_ACCESS_TOKEN"),
    appliedEventId: Number(Deno.env.get("MODEL_ENDPOINT_EVENT_ID") ?? "0"),
    apiUrl: Deno.env.get("SUPABASE_API_URL") ?? "https://api.supabase.com",
  };
}

if (import.meta.main) {
  const env = envFromDeno();
  const port = Deno.env.get("PORT");
  if (port === undefined) {
    Deno.serve((req) => handle(req, env));
  } else {
    Deno.serve({
      hostname: "127.0.0.1",
      port: Number(port),
      onListen: ({ port }) => console.log(`listening on 127.0.0.1:${port}`),
    }, (req) => handle(req, env));
  }
}
