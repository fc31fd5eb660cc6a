/**
 * Runs a load generator script in a child process (`node --import tsx <script> '<options as JSON>'`)
 * and returns the JSON summary it prints as its last stdout line. The child is killed when the
 * runner is interrupted or when it outlives its duration by a minute.
 */
import { spawn } from 'node:child_process';

export interface JsonChildOptions<T> {
  /** The repository root (the child's working directory, where tsx resolves). */
  cwd: string;
  script: string;
  /** Handed to the script as its one argument, as JSON. */
  options: unknown;
  /** How long the child is meant to run; it is killed a minute after that. */
  durationS: number;
  /** Names the child in errors ("load generator", "WebSocket load generator"). */
  what: string;
  isSummary: (v: unknown) => v is T;
  onCleanup: (fn: () => void) => () => void;
}

export function runJsonChild<T>(o: JsonChildOptions<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', o.script, JSON.stringify(o.options)], { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const unregister = o.onCleanup(kill);
    const limit = setTimeout(kill, (o.durationS + 60) * 1000);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => {
      clearTimeout(limit);
      unregister();
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      unregister();
      if (code !== 0) {
        reject(new Error(`${o.what} exited with ${signal ?? `code ${String(code)}`}\n${stderr.trim()}`));
        return;
      }
      const line = stdout.trim().split('\n').pop() ?? '';
      let parsed: unknown;
      try {
        parsed = JSON.parse(line) as unknown;
      } catch {
        reject(new Error(`${o.what} printed no JSON result:\n${stdout}\n${stderr}`));
        return;
      }
      if (!o.isSummary(parsed)) {
        reject(new Error(`${o.what} printed an unexpected result: ${line}`));
        return;
      }
      resolve(parsed);
    });
  });
}
