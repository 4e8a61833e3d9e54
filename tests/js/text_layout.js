// Injected into a copy of a page by the layout tests: every piece of visible text must lie
// inside the viewport, inside its SVG and inside any scrolling box around it, and no two pieces
// may overlap. The findings go into <pre id="layout-result"> for `chromium --dump-dom`.
(function () {
  const out = {width: document.documentElement.clientWidth, scrollWidth: document.documentElement.scrollWidth,
               texts: 0, overlaps: [], clipped: []};
  const boxes = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const text = node.textContent.trim();
    const el = node.parentElement;
    if (!text || el.closest("title, style, script, #layout-result")) continue;
    const svgText = el.closest("text");
    if (svgText) {
      if (seen.has(svgText)) continue;
      seen.add(svgText);
      boxes.push({id: boxes.length, text: svgText.textContent.trim(), el: svgText, r: svgText.getBoundingClientRect()});
      continue;
    }
    const range = document.createRange();
    range.selectNodeContents(node);
    const id = boxes.length;
    for (const r of range.getClientRects()) {
      if (r.width >= 0.5 && r.height >= 0.5) boxes.push({id, text, el, r});
    }
  }
  out.texts = boxes.length;
  const tol = 1;
  for (const b of boxes) {
    const limits = [["viewport", 0, out.width]];
    const svg = b.el.closest("svg");
    if (svg) { const s = svg.getBoundingClientRect(); limits.push(["svg", s.left, s.right]); }
    for (let a = b.el.parentElement; a; a = a.parentElement) {
      const ov = getComputedStyle(a).overflowX;
      if (ov === "auto" || ov === "hidden" || ov === "scroll") { const s = a.getBoundingClientRect(); limits.push([a.getAttribute("class") || a.tagName, s.left, s.right]); }
    }
    for (const [what, lo, hi] of limits) {
      if (b.r.left < lo - tol || b.r.right > hi + tol) out.clipped.push({text: b.text.slice(0, 60), by: what, left: b.r.left, right: b.r.right, lo, hi});
    }
  }
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      if (a.id === b.id) continue;
      const ix = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
      const iy = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
      if (ix > tol && iy > tol) out.overlaps.push([a.text.slice(0, 40), b.text.slice(0, 40)]);
    }
  }
  const pre = document.createElement("pre");
  pre.id = "layout-result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
