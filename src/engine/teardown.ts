/**
 * Ordered teardown: each part registers how it is closed when it has started; `close()` runs the
 * steps in reverse order, keeps going after a failure, and throws the first error at the end.
 * Idempotent: a second `close()` returns the first one's promise.
 */
export class Teardown {
  private readonly steps: { name: string; fn: () => void | Promise<void> }[] = [];
  private closing: Promise<void> | null = null;

  register(name: string, fn: () => void | Promise<void>): void {
    if (this.closing) throw new Error(`cannot register ${name}: teardown already started`);
    this.steps.push({ name, fn });
  }

  get started(): boolean {
    return this.closing !== null;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const errors: unknown[] = [];
      for (const step of this.steps.splice(0).reverse()) {
        try {
          await step.fn();
        } catch (err) {
          errors.push(err instanceof Error ? new Error(`${step.name}: ${err.message}`, { cause: err }) : err);
        }
      }
      if (errors.length > 0) throw errors[0];
    })();
    return this.closing;
  }
}
