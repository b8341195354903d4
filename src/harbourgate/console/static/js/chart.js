// SVG charts drawn here (no library): stacked columns over time, stacked bars per item.
// Each chart is an <svg role="img"> with a title and a description that says the numbers.

const NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#0a58ca", "#bc4c00", "#1a7f37", "#8250df", "#cf222e", "#0598bc", "#9a6700", "#57606a"];
export const EFFECT_COLOURS = { allow: "#1a7f37", reroute: "#bc4c00", deny: "#cf222e" };

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

let chartCounter = 0;

function frame(width, height, title, description) {
  const id = `chart${++chartCounter}`;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-labelledby": `${id}-t`, "aria-describedby": `${id}-d` });
  svg.append(s("title", { id: `${id}-t` }, title), s("desc", { id: `${id}-d` }, description));
  return svg;
}

function legend(series) {
  const div = document.createElement("div");
  div.className = "legend";
  for (const item of series) {
    const span = document.createElement("span");
    span.style.setProperty("--c", item.colour);
    span.textContent = item.name;
    div.append(span);
  }
  return div;
}

function niceMax(n) {
  if (n <= 5) return Math.max(1, n);
  const p = 10 ** Math.floor(Math.log10(n));
  return Math.ceil(n / p) * p;
}

// buckets: labels along x; series: [{name, colour, values: number[]}]
export function columns(title, buckets, series) {
  const width = 760, height = 260, left = 44, bottom = 46, top = 10;
  const totals = buckets.map((_, i) => series.reduce((a, x) => a + (x.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const plotH = height - bottom - top, plotW = width - left - 10;
  const step = plotW / Math.max(1, buckets.length);
  const barW = Math.max(2, Math.min(40, step * 0.7));
  const description = buckets.map((b, i) => `${b}: ` + series.map((x) => `${x.name} ${x.values[i] || 0}`).join(", ")).join("; ");
  const svg = frame(width, height, title, description);
  for (const frac of max >= 2 ? [0, 0.5, 1] : [0, 1]) {
    const y = top + plotH * (1 - frac);
    svg.append(s("line", { x1: left, x2: width - 10, y1: y, y2: y, stroke: "#d0d7de" }),
      s("text", { x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#57606a" }, String(Math.round(max * frac))));
  }
  const labelEvery = Math.ceil(buckets.length / 8);
  buckets.forEach((label, i) => {
    let y = top + plotH;
    const x = left + i * step + (step - barW) / 2;
    for (const item of series) {
      const v = item.values[i] || 0;
      if (!v) continue;
      const hgt = (v / max) * plotH;
      y -= hgt;
      const rect = s("rect", { x, y, width: barW, height: hgt, fill: item.colour });
      rect.append(s("title", {}, `${label} · ${item.name}: ${v}`));
      svg.append(rect);
    }
    if (i % labelEvery === 0) {
      svg.append(s("text", { x: x + barW / 2, y: height - bottom + 16, "text-anchor": "middle", "font-size": 11, fill: "#57606a" }, label));
    }
  });
  const wrap = document.createElement("figure");
  wrap.className = "chart";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  wrap.append(caption, svg, legend(series));
  return wrap;
}

// rows: [{label, parts: {name: value}}]; series: [{name, colour}]
export function bars(title, rows, series) {
  const rowH = 26, left = 190, width = 760;
  const height = 20 + rows.length * rowH;
  const max = niceMax(Math.max(1, ...rows.map((r) => series.reduce((a, x) => a + (r.parts[x.name] || 0), 0))));
  const description = rows.map((r) => `${r.label}: ` + series.map((x) => `${x.name} ${r.parts[x.name] || 0}`).join(", ")).join("; ");
  const svg = frame(width, height, title, description);
  rows.forEach((r, i) => {
    const y = 10 + i * rowH;
    svg.append(s("text", { x: left - 8, y: y + 15, "text-anchor": "end", "font-size": 12, fill: "#1b1f24" }, r.label.length > 28 ? r.label.slice(0, 27) + "…" : r.label));
    let x = left;
    for (const item of series) {
      const v = r.parts[item.name] || 0;
      if (!v) continue;
      const w = (v / max) * (width - left - 60);
      const rect = s("rect", { x, y, width: w, height: rowH - 8, fill: item.colour });
      rect.append(s("title", {}, `${r.label} · ${item.name}: ${v}`));
      svg.append(rect);
      x += w;
    }
    svg.append(s("text", { x: x + 6, y: y + 14, "font-size": 11, fill: "#57606a" }, String(series.reduce((a, z) => a + (r.parts[z.name] || 0), 0))));
  });
  const wrap = document.createElement("figure");
  wrap.className = "chart";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  wrap.append(caption, svg, legend(series));
  return wrap;
}
