import { errorMessage, type Logger } from '../logger.js';
import type { CommittedTransaction, TransactionSubscriber } from './transactions.js';

/**
 * Hands every committed transaction to the subscribers, each under its failure policy: a
 * `refuse-writes` subscriber's error propagates to capture (the namespace refuses writes); an
 * `isolated` subscriber's error is logged and reported to it, and nobody else notices.
 */
export class FramePublisher {
  private readonly subscribers = new Set<TransactionSubscriber>();

  constructor(
    private readonly namespace: string,
    private readonly logger: Logger,
  ) {}

  /** True when someone listens: capture only copies frames out for a listener. */
  get active(): boolean {
    return this.subscribers.size > 0;
  }

  get count(): number {
    return this.subscribers.size;
  }

  subscribe(subscriber: TransactionSubscriber): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  publish(txn: CommittedTransaction): void {
    for (const s of this.subscribers) {
      try {
        s.onTransaction(txn);
      } catch (err) {
        if (s.policy === 'refuse-writes') throw err;
        this.logger.error({ err }, `namespace ${this.namespace}: subscriber ${s.name} failed on frames ${txn.firstFrameNo}..${txn.lastFrameNo}: ${errorMessage(err)}`);
        try {
          s.onError?.(err, txn);
        } catch (inner) {
          this.logger.error({ err: inner }, `namespace ${this.namespace}: subscriber ${s.name} failed to handle its error`);
        }
      }
    }
  }

  newLog(logId: string, reason: string): void {
    for (const s of this.subscribers) {
      try {
        s.onNewLog?.(logId, reason);
      } catch (err) {
        this.logger.error({ err }, `namespace ${this.namespace}: subscriber ${s.name} failed on a new log: ${errorMessage(err)}`);
      }
    }
  }

  /** The namespace closes: every subscriber hears of it once, then the list is empty. */
  close(): void {
    const all = [...this.subscribers];
    this.subscribers.clear();
    for (const s of all) {
      try {
        s.onClose?.();
      } catch (err) {
        this.logger.error({ err }, `namespace ${this.namespace}: subscriber ${s.name} failed on close: ${errorMessage(err)}`);
      }
    }
  }
}
