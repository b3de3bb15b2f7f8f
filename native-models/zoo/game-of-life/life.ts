import { seededRandom } from '../../ir/random.ts';

/**
 * Conway's Game of Life on finite square boards whose outside is dead (what a 'same' convolution's
 * zero padding sees), and seeded random boards to learn it from.
 */

/** `count` boards of size×size cells, row-major, one byte per cell (1 = alive). */
export interface Boards {
  count: number;
  size: number;
  cells: Uint8Array;
}

export interface BoardOptions {
  count: number;
  size: number;
  seed: number;
  /**
   * Each board's density is drawn uniformly from this range (default [0.05, 0.95]): sparse boards
   * teach births and survival, dense ones overcrowding deaths, so every neighbourhood count occurs.
   */
  density?: [number, number];
}

export function randomBoards(options: BoardOptions): Boards {
  const { count, size, seed } = options;
  const [lo, hi] = options.density ?? [0.05, 0.95];
  const random = seededRandom(seed);
  const cells = new Uint8Array(count * size * size);
  for (let b = 0; b < count; b++) {
    const density = lo + (hi - lo) * random();
    for (let i = b * size * size; i < (b + 1) * size * size; i++) cells[i] = random() < density ? 1 : 0;
  }
  return { count, size, cells };
}

/** One generation: alive next iff 3 live neighbours, or 2 and alive now. */
export function lifeStep(boards: Boards): Boards {
  const { count, size, cells } = boards;
  const next = new Uint8Array(cells.length);
  for (let b = 0; b < count; b++) {
    const base = b * size * size;
    for (let r = 0; r < size; r++) {
      for (let c = 0; c < size; c++) {
        let n = 0;
        for (let dr = -1; dr <= 1; dr++) {
          const rr = r + dr;
          if (rr < 0 || rr >= size) continue;
          for (let dc = -1; dc <= 1; dc++) {
            const cc = c + dc;
            if ((dr === 0 && dc === 0) || cc < 0 || cc >= size) continue;
            n += cells[base + rr * size + cc]!;
          }
        }
        const alive = cells[base + r * size + c] === 1;
        next[base + r * size + c] = n === 3 || (n === 2 && alive) ? 1 : 0;
      }
    }
  }
  return { count, size, cells: next };
}

export function lifeSteps(boards: Boards, steps: number): Boards {
  let out = boards;
  for (let i = 0; i < steps; i++) out = lifeStep(out);
  return out;
}

/**
 * The 512 boards of 3×3 cells, one per neighbourhood (board b's cells are the bits of b, first
 * cell highest). A one-step network sees nothing but the 3×3 neighbourhood of a cell, so one that
 * is right on every cell of these boards is right on every cell of every board, of any size.
 */
export function allNeighbourhoods(): Boards {
  const cells = new Uint8Array(512 * 9);
  for (let b = 0; b < 512; b++) for (let i = 0; i < 9; i++) cells[b * 9 + i] = (b >> (8 - i)) & 1;
  return { count: 512, size: 3, cells };
}

/**
 * Which of the 512 3×3 neighbourhoods (centre included, outside = dead) occur in the boards. A
 * one-step network is a function of the neighbourhood alone, so one that is right on every
 * neighbourhood of its training boards is right on any board made of those neighbourhoods.
 */
export function neighbourhoodsSeen(boards: Boards): Set<number> {
  const { count, size, cells } = boards;
  const seen = new Set<number>();
  for (let b = 0; b < count; b++) {
    const base = b * size * size;
    for (let r = 0; r < size; r++) {
      for (let c = 0; c < size; c++) {
        let code = 0;
        for (let dr = -1; dr <= 1; dr++) {
          for (let dc = -1; dc <= 1; dc++) {
            const rr = r + dr;
            const cc = c + dc;
            const v = rr < 0 || rr >= size || cc < 0 || cc >= size ? 0 : cells[base + rr * size + cc]!;
            code = (code << 1) | v;
          }
        }
        seen.add(code);
      }
    }
  }
  return seen;
}
