/** The terminal's columns and rows, following resizes. */
import { useEffect, useState } from 'react';

export interface TerminalSize {
  columns: number;
  rows: number;
}

interface SizedStream {
  columns?: number;
  rows?: number;
  on(event: 'resize', listener: () => void): unknown;
  off(event: 'resize', listener: () => void): unknown;
}

const sizeOf = (out: SizedStream): TerminalSize => ({ columns: out.columns ?? 80, rows: out.rows ?? 24 });

export function useTerminalSize(stdout: SizedStream): TerminalSize {
  const [size, setSize] = useState<TerminalSize>(() => sizeOf(stdout));
  useEffect(() => {
    const onResize = (): void => setSize(sizeOf(stdout));
    stdout.on('resize', onResize);
    onResize();
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout]);
  return size;
}
