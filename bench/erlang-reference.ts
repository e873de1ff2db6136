// Erlang/OTP reference figures for the runtime benchmark: compiles
// bench/erlang/iris_bench.erl into a temp dir, runs it under `erl +S 1`
// and returns ring / ping-pong / spawn / idle-memory numbers for comparison.
import { spawn } from "node:child_process";
import { constants as fsConstants } from "node:fs";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface ErlangFigures {
  erlang_ring_hops_per_s: number;
  erlang_pingpong_msgs_per_s: number;
  erlang_spawn_us: number;
  erlang_idle_process_bytes: number;
  erlang_version: string;
}

export interface MeasureErlangOptions {
  /** Hard bound for compiling and running the Erlang side (default 60 s). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const INSTALL_TIMEOUT_MS = 300_000;
const OUTPUT_LIMIT = 1 << 20;

/**
 * Runs the Erlang reference benchmark. Returns `{ skipped }` only when no
 * Erlang/OTP can be found or installed; compile/run failures throw.
 */
export async function measureErlang(
  opts?: { timeoutMs?: number },
): Promise<ErlangFigures | { skipped: string }> {
  const timeoutMs = opts?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;

  const tools = await ensureErlang();
  if ("skipped" in tools) return tools;

  const source = await findSource();
  const outDir = await mkdtemp(join(tmpdir(), "iris-erlang-bench-"));
  try {
    await run(tools.erlc, ["-o", outDir, source], remaining(deadline, "erlc"));
    const result = await run(
      tools.erl,
      ["+S", "1", "-noshell", "-pa", outDir, "-eval", "iris_bench:all()", "-s", "init", "stop"],
      remaining(deadline, "erl"),
    );
    return parseFigures(result.stdout, result.stderr);
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Locating / installing Erlang
// ---------------------------------------------------------------------------

interface ErlangTools {
  erl: string;
  erlc: string;
}

async function ensureErlang(): Promise<ErlangTools | { skipped: string }> {
  const found = await findTools();
  if (found) return found;

  const install = await installErlangBase();
  if (install !== null) return { skipped: `erl/erlc not on PATH and installing erlang-base failed: ${install}` };

  const after = await findTools();
  if (after) return after;
  return { skipped: "erlang-base was installed but erl/erlc are still not on PATH" };
}

async function findTools(): Promise<ErlangTools | null> {
  const erl = await which("erl");
  const erlc = await which("erlc");
  return erl && erlc ? { erl, erlc } : null;
}

async function which(name: string): Promise<string | null> {
  const dirs = (process.env.PATH ?? "").split(delimiter).filter((d) => d.length > 0);
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here, keep looking
    }
  }
  return null;
}

/** Installs Debian's erlang-base; returns null on success, else a reason. */
async function installErlangBase(): Promise<string | null> {
  const aptGet = await which("apt-get");
  if (!aptGet) return "apt-get not available";

  // Not root: only attempt a non-interactive sudo.
  let cmd = aptGet;
  let prefix: string[] = [];
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    const sudo = await which("sudo");
    if (!sudo) return "not root and sudo not available";
    cmd = sudo;
    prefix = ["-n", "DEBIAN_FRONTEND=noninteractive", aptGet];
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = [...prefix, "install", "-y", "-q", "--no-install-recommends", "erlang-base"];

  try {
    await run(cmd, install, INSTALL_TIMEOUT_MS, env);
    return null;
  } catch {
    // Package lists may be stale or missing: refresh and retry once.
  }
  try {
    await run(cmd, [...prefix, "update", "-q"], INSTALL_TIMEOUT_MS, env);
    await run(cmd, install, INSTALL_TIMEOUT_MS, env);
    return null;
  } catch (err) {
    return errorMessage(err);
  }
}

async function findSource(): Promise<string> {
  // dist/bench/erlang-reference.js -> ../../bench/erlang; bench/erlang-reference.ts -> ./erlang
  const candidates = [
    fileURLToPath(new URL("../../bench/erlang/iris_bench.erl", import.meta.url)),
    fileURLToPath(new URL("./erlang/iris_bench.erl", import.meta.url)),
  ];
  for (const c of candidates) {
    try {
      await access(c, fsConstants.R_OK);
      return c;
    } catch {
      // try the next location
    }
  }
  throw new Error(`iris_bench.erl not found (looked in: ${candidates.join(", ")})`);
}

// ---------------------------------------------------------------------------
// Running child processes
// ---------------------------------------------------------------------------

interface RunResult {
  stdout: string;
  stderr: string;
}

function remaining(deadline: number, step: string): number {
  const left = deadline - Date.now();
  if (left <= 0) throw new Error(`Erlang reference bench timed out before ${step}`);
  return left;
}

/** Runs a command without a shell; kills it by pid on timeout. */
function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let settled = false;

    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      if (stdout.length < OUTPUT_LIMIT) stdout += chunk;
    });
    child.stderr.on("data", (chunk: string) => {
      if (stderr.length < OUTPUT_LIMIT) stderr += chunk;
    });

    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }, timeoutMs);

    const finish = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve({ stdout, stderr });
    };

    child.on("error", (err) => finish(err));
    child.on("close", (code, signal) => {
      const what = [cmd, ...args].join(" ");
      if (timedOut) finish(new Error(`${what}: killed after ${timeoutMs} ms timeout`));
      else if (code !== 0) finish(new Error(`${what}: exited with ${code ?? signal}: ${tail(stderr || stdout)}`));
      else finish(null);
    });
  });
}

// ---------------------------------------------------------------------------
// Parsing the JSON lines printed by iris_bench:all()
// ---------------------------------------------------------------------------

function parseFigures(stdout: string, stderr: string): ErlangFigures {
  const byBench = new Map<string, Record<string, unknown>>();
  for (const line of stdout.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed.startsWith("{")) continue;
    try {
      const obj: unknown = JSON.parse(trimmed);
      if (obj !== null && typeof obj === "object" && typeof (obj as Record<string, unknown>).bench === "string") {
        const rec = obj as Record<string, unknown>;
        byBench.set(rec.bench as string, rec);
      }
    } catch {
      // not one of our lines
    }
  }

  const num = (bench: string, key: string): number => {
    const v = byBench.get(bench)?.[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new Error(`Erlang bench output lacks ${bench}.${key}: ${tail(stdout + stderr)}`);
    }
    return v;
  };

  const version = byBench.get("version");
  const otp = typeof version?.otp_version === "string" ? version.otp_version : "unknown";
  const erts = typeof version?.erts_version === "string" ? version.erts_version : "unknown";

  return {
    erlang_ring_hops_per_s: num("ring", "hops_per_s"),
    erlang_pingpong_msgs_per_s: num("pingpong", "msgs_per_s"),
    erlang_spawn_us: num("spawn", "spawn_us"),
    erlang_idle_process_bytes: num("idle_memory", "idle_process_bytes"),
    erlang_version: `OTP ${otp} (erts ${erts})`,
  };
}

function tail(s: string, max = 2000): string {
  const t = s.trim();
  return t.length > max ? `...${t.slice(-max)}` : t;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
