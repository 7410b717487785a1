// Small charts drawn by hand in SVG (a stacked bar per time bucket): a dependency would cost
// more than the sixty lines it saves. Colours come from the status classes of the stylesheet,
// so dark mode follows; the figures are in each bar's title and in the chart's label.

const NS = 'http://www.w3.org/2000/svg';

function el(tag, attrs) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/**
 * Draws stacked bars into `box`: one bar per bucket, one segment per key.
 * @param {HTMLElement} box
 * @param {Array<{at: string, values: Record<string, number>}>} buckets oldest first
 * @param {string[]} keys bottom first; each is also the segment's CSS class (`k-<key>`)
 * @param {{label: string, unit?: string}} options
 */
export function drawBars(box, buckets, keys, { label, unit = '' }) {
  const W = 600;
  const H = 160;
  const PAD = { l: 36, r: 6, t: 8, b: 20 };
  const totals = buckets.map((b) => keys.reduce((n, k) => n + (b.values[k] || 0), 0));
  const max = niceCeiling(Math.max(0, ...totals));
  const sum = totals.reduce((a, b) => a + b, 0);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'bars', role: 'img', preserveAspectRatio: 'none' });
  const title = el('title', {});
  title.textContent = `${label}: ${sum} in ${buckets.length} buckets, at most ${max}${unit} in one`;
  svg.append(title);
  const plotW = W - PAD.l - PAD.r;
  const plotH = H - PAD.t - PAD.b;
  for (const frac of [0, 0.5, 1]) {
    const y = PAD.t + plotH * (1 - frac);
    svg.append(el('line', { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: 'grid' }));
    const t = el('text', { x: PAD.l - 4, y: y + 4, class: 'axis', 'text-anchor': 'end' });
    t.textContent = String(Math.round(max * frac));
    svg.append(t);
  }
  const step = plotW / Math.max(buckets.length, 1);
  buckets.forEach((b, i) => {
    let y = PAD.t + plotH;
    const x = PAD.l + i * step + step * 0.1;
    const g = el('g', {});
    const tip = el('title', {});
    tip.textContent = `${new Date(b.at).toLocaleTimeString()}: ${keys.map((k) => `${k} ${b.values[k] || 0}`).join(', ')}`;
    g.append(tip);
    for (const k of keys) {
      const v = b.values[k] || 0;
      if (!v) continue;
      const hgt = (v / max) * plotH;
      y -= hgt;
      g.append(el('rect', { x, y, width: Math.max(step * 0.8, 1), height: hgt, class: `k-${k}` }));
    }
    svg.append(g);
  });
  for (const [i, anchor] of [[0, 'start'], [buckets.length - 1, 'end']]) {
    if (!buckets[i]) continue;
    const t = el('text', { x: i === 0 ? PAD.l : W - PAD.r, y: H - 5, class: 'axis', 'text-anchor': anchor });
    t.textContent = new Date(buckets[i].at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    svg.append(t);
  }
  const legend = document.createElement('p');
  legend.className = 'legend';
  for (const k of keys) {
    const item = document.createElement('span');
    item.className = `key k-${k}`;
    item.textContent = `${k} ${buckets.reduce((n, b) => n + (b.values[k] || 0), 0).toLocaleString()}`;
    legend.append(item);
  }
  box.dataset.total = String(sum);
  box.setAttribute('aria-label', title.textContent);
  box.replaceChildren(svg, legend);
}

/** The smallest of 4, 10, 20, 50, 100, 200, … at or above `n`: round figures on the axis. */
function niceCeiling(n) {
  if (n <= 4) return 4;
  const power = 10 ** Math.floor(Math.log10(n));
  return [1, 2, 5, 10].map((m) => m * power).find((v) => v >= n) ?? 10 * power;
}
