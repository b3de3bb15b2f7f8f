import {
  BarController, BarElement, CategoryScale, Chart, Filler, Legend, LinearScale, LineController, LineElement,
  LogarithmicScale, PointElement, ScatterController, Tooltip, type ChartConfiguration,
} from 'chart.js';
import { plain } from './snapshot.svelte.ts';

/**
 * Charts are chart.js (maintained, canvas, no DOM per point: a 10,000-row histogram or a
 * 200-run scatter stays cheap). Only the pieces the views use are registered, to keep the bundle small.
 */
Chart.register(BarController, BarElement, CategoryScale, LinearScale, LogarithmicScale, LineController, LineElement, PointElement, ScatterController, Tooltip, Legend, Filler);

/** Colours from the current theme's CSS variables, so charts follow light and dark themes. */
export function themeColor(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/**
 * Svelte action: `<canvas use:chart={config}>`. Updating the parameter replaces data and options
 * in place (no re-creation, no flicker); animations are off so large updates stay under a frame.
 */
export function chart(canvas: HTMLCanvasElement, config: ChartConfiguration) {
  const instance = new Chart(canvas, withDefaults(config));
  return {
    update(next: ChartConfiguration) {
      const c = withDefaults(next);
      instance.data = c.data;
      instance.options = c.options ?? {};
      instance.update('none');
    },
    destroy() {
      instance.destroy();
    },
  };
}

function withDefaults(config: ChartConfiguration): ChartConfiguration {
  const text = themeColor('--text-muted', '#666');
  const grid = themeColor('--border', '#ddd');
  Chart.defaults.color = text;
  Chart.defaults.borderColor = grid;
  // Data is copied: it may hold $state proxies, which chart.js cannot annotate.
  return { ...config, data: plain(config.data), options: { animation: false, responsive: true, maintainAspectRatio: false, ...config.options } } as ChartConfiguration;
}
