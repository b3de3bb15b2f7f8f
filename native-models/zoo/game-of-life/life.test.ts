import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allNeighbourhoods, lifeStep, lifeSteps, neighbourhoodsSeen, randomBoards, type Boards } from './life.ts';

/** The rule as written on paper: live cells as "r,c" strings, neighbours counted per live cell. */
function referenceStep(board: number[][]): number[][] {
  const size = board.length;
  const live = new Set<string>();
  board.forEach((row, r) => row.forEach((v, c) => { if (v) live.add(`${r},${c}`); }));
  const counts = new Map<string, number>();
  for (const key of live) {
    const [r, c] = key.split(',').map(Number) as [number, number];
    for (const dr of [-1, 0, 1]) for (const dc of [-1, 0, 1]) {
      if (dr === 0 && dc === 0) continue;
      const rr = r + dr;
      const cc = c + dc;
      if (rr < 0 || cc < 0 || rr >= size || cc >= size) continue; // the outside is dead
      counts.set(`${rr},${cc}`, (counts.get(`${rr},${cc}`) ?? 0) + 1);
    }
  }
  return board.map((row, r) => row.map((_, c) => {
    const n = counts.get(`${r},${c}`) ?? 0;
    return n === 3 || (n === 2 && live.has(`${r},${c}`)) ? 1 : 0;
  }));
}

function toGrid(b: Boards, index: number): number[][] {
  const per = b.size * b.size;
  return Array.from({ length: b.size }, (_, r) => [...b.cells.subarray(index * per + r * b.size, index * per + (r + 1) * b.size)]);
}

function fromGrid(rows: string[]): Boards {
  return { count: 1, size: rows.length, cells: Uint8Array.from(rows.join('').split('').map((ch) => (ch === '#' ? 1 : 0))) };
}

test('lifeStep matches a straightforward reference on random boards, edges and corners included', () => {
  for (const [size, seed] of [[5, 1], [9, 2], [16, 3]] as const) {
    const boards = randomBoards({ count: 20, size, seed });
    const next = lifeStep(boards);
    for (let b = 0; b < boards.count; b++) assert.deepEqual(toGrid(next, b), referenceStep(toGrid(boards, b)), `size ${size} board ${b}`);
  }
});

test('allNeighbourhoods: the 512 3×3 boards, each centre seeing a different neighbourhood', () => {
  const all = allNeighbourhoods();
  assert.equal(all.count, 512);
  assert.equal(neighbourhoodsSeen(all).size, 512);
  const next = lifeStep(all);
  for (let b = 0; b < 512; b++) assert.deepEqual(toGrid(next, b), referenceStep(toGrid(all, b)));
});

test('known patterns: a block stays, a blinker flips, a glider moves one cell diagonally in 4 steps', () => {
  const block = fromGrid(['....', '.##.', '.##.', '....']);
  assert.deepEqual(lifeStep(block).cells, block.cells);
  const blinker = fromGrid(['.....', '..#..', '..#..', '..#..', '.....']);
  assert.deepEqual(toGrid(lifeStep(blinker), 0), toGrid(fromGrid(['.....', '.....', '.###.', '.....', '.....']), 0));
  assert.deepEqual(lifeSteps(blinker, 2).cells, blinker.cells);
  const glider = fromGrid(['.#.....', '..#....', '###....', '.......', '.......', '.......', '.......']);
  const moved = fromGrid(['.......', '..#....', '...#...', '.###...', '.......', '.......', '.......']);
  assert.deepEqual(toGrid(lifeSteps(glider, 4), 0), toGrid(moved, 0));
  // A corner cell with the outside dead: three live cells around an empty corner give a birth.
  assert.equal(lifeStep(fromGrid(['.#.', '##.', '...'])).cells[0], 1);
});

test('random boards are seeded, vary in density, and give births, survivals and deaths', () => {
  const a = randomBoards({ count: 64, size: 12, seed: 7 });
  assert.deepEqual(a.cells, randomBoards({ count: 64, size: 12, seed: 7 }).cells);
  assert.notDeepEqual(a.cells, randomBoards({ count: 64, size: 12, seed: 8 }).cells);
  const per = 144;
  const densities = Array.from({ length: 64 }, (_, b) => a.cells.subarray(b * per, (b + 1) * per).reduce((s, v) => s + v, 0) / per);
  assert.ok(Math.min(...densities) < 0.25 && Math.max(...densities) > 0.75, `densities ${Math.min(...densities)}..${Math.max(...densities)}`);
  const next = lifeStep(a);
  let births = 0, deaths = 0, survivals = 0;
  a.cells.forEach((v, i) => { if (!v && next.cells[i]) births++; else if (v && !next.cells[i]) deaths++; else if (v) survivals++; });
  assert.ok(births > 500 && deaths > 500 && survivals > 500, `births ${births}, deaths ${deaths}, survivals ${survivals}`);
  assert.equal(neighbourhoodsSeen(randomBoards({ count: 200, size: 12, seed: 7 })).size, 512, 'every 3×3 neighbourhood occurs');
});
