// Tiled restoration with the same rules as `edgeens restore` (edgeens/restore.py: restore_array): tiles of the
// model's fixed input size, overlapping by `overlap` pixels and blended with linear ramps, images smaller than a tile
// padded at the bottom and right (reflect, or replicate when too small to reflect), the result clipped to [0, 1].
"use strict";

function starts(length, tile, overlap) {
  if (length <= tile) return [0];
  const out = [];
  for (let s = 0; s < length - tile; s += tile - overlap) out.push(s);
  out.push(length - tile);
  return out;
}

function ramp(length, overlap, rise, fall) {
  const weights = new Float32Array(length).fill(1);
  if (!overlap) return weights;
  const margin = Math.floor(overlap / 4);
  const span = overlap - 2 * margin;
  const up = new Float32Array(overlap);
  for (let i = 0; i < overlap; i++) up[i] = i < margin ? 0 : i < margin + span ? (i - margin + 0.5) / Math.max(span, 1) : 1;
  if (rise) weights.set(up);
  if (fall) for (let i = 0; i < overlap; i++) {
    const j = length - overlap + i;
    weights[j] = Math.min(weights[j], up[overlap - 1 - i]);
  }
  return weights;
}

// Index into a side of `size` pixels padded to more: reflect (torch's mode, no edge repeat) or replicate.
function padIndex(i, size, reflect) {
  if (i < size) return i;
  return reflect ? 2 * (size - 1) - i : size - 1;
}

// rgba: Uint8ClampedArray of width x height; returns Float32Array (3, height, width) of the restored photo.
async function restorePixels(session, rgba, width, height, tileH, tileW, overlap, onTile) {
  if ((width > tileW || height > tileH) && overlap >= Math.floor(Math.min(tileH, tileW) / 2)) {
    throw new Error(`overlap ${overlap} must be less than half the tile (${tileH}x${tileW})`);
  }
  const wholeH = Math.max(height, tileH), wholeW = Math.max(width, tileW);
  const reflect = wholeH - height < height && wholeW - width < width;
  const output = new Float32Array(3 * wholeH * wholeW);
  const weight = new Float32Array(wholeH * wholeW);
  const rows = starts(wholeH, tileH, overlap), cols = starts(wholeW, tileW, overlap);
  const input = new Float32Array(3 * tileH * tileW);
  const plane = tileH * tileW;
  const name = session.inputNames[0];
  let done = 0;
  for (const top of rows) {
    for (const left of cols) {
      for (let y = 0; y < tileH; y++) {
        const sy = padIndex(top + y, height, reflect);
        for (let x = 0; x < tileW; x++) {
          const p = 4 * (sy * width + padIndex(left + x, width, reflect));
          const q = y * tileW + x;
          input[q] = rgba[p] / 255; input[plane + q] = rgba[p + 1] / 255; input[2 * plane + q] = rgba[p + 2] / 255;
        }
      }
      const result = await session.run({ [name]: new ort.Tensor("float32", input, [1, 3, tileH, tileW]) });
      const restored = result[session.outputNames[0]].data;
      const wy = ramp(tileH, overlap, top > 0, top + tileH < wholeH);
      const wx = ramp(tileW, overlap, left > 0, left + tileW < wholeW);
      for (let y = 0; y < tileH; y++) {
        for (let x = 0; x < tileW; x++) {
          const w = wy[y] * wx[x], o = (top + y) * wholeW + left + x, q = y * tileW + x;
          for (let c = 0; c < 3; c++) output[c * wholeH * wholeW + o] += restored[c * plane + q] * w;
          weight[o] += w;
        }
      }
      done += 1;
      if (onTile) onTile(done, rows.length * cols.length);
      await new Promise((resolve) => setTimeout(resolve, 0)); // let the page repaint its progress bar
    }
  }
  const photo = new Float32Array(3 * height * width);
  for (let c = 0; c < 3; c++) for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const o = y * wholeW + x, v = output[c * wholeH * wholeW + o] / weight[o];
    if (!Number.isFinite(v)) throw new Error("the model produced NaN or infinite values: its weights are broken");
    photo[(c * height + y) * width + x] = Math.min(1, Math.max(0, v));
  }
  return photo;
}

function toImageData(photo, width, height) {
  const out = new ImageData(width, height), plane = width * height;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out.data[4 * i + c] = Math.floor(photo[c * plane + i] * 255 + 0.5); // as write_photo
    out.data[4 * i + 3] = 255;
  }
  return out;
}

async function main() {
  const $ = (id) => document.getElementById(id);
  const fail = (message) => { $("error").textContent = message; $("progress").hidden = true; window.restoreError = message; };
  let info, session;
  try {
    info = await (await fetch("model.json")).json();
    ort.env.wasm.wasmPaths = new URL("ort/", location.href).href; // a bare "ort/" reads as a module name
    ort.env.wasm.numThreads = 1; // several threads need cross-origin isolation headers a phone's page may lack
    session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
  } catch (err) {
    return fail(`the model could not be loaded (${err.message || err}); restart edgeens serve with --model PATH.onnx`);
  }
  $("model").textContent = `${info.name} (tiles of ${info.tile[0]}x${info.tile[1]})`;
  window.edgeensReady = true;
  $("photo").addEventListener("change", async () => {
    const file = $("photo").files[0];
    if (!file) return;
    $("error").textContent = ""; window.restoreDone = false; window.restoreError = null;
    let bitmap;
    try {
      bitmap = await createImageBitmap(file);
    } catch (err) {
      return fail(`${file.name} is not an image this browser can decode; try a JPEG or PNG`);
    }
    const { width, height } = bitmap;
    try {
      const before = $("before"), after = $("after");
      before.width = after.width = width; before.height = after.height = height;
      const context = before.getContext("2d");
      context.drawImage(bitmap, 0, 0);
      const rgba = context.getImageData(0, 0, width, height).data;
      $("progress").hidden = false;
      const started = performance.now();
      const photo = await restorePixels(session, rgba, width, height, info.tile[0], info.tile[1], info.overlap,
        (done, total) => { $("progress").value = done / total; $("status").textContent = `tile ${done} of ${total}`; });
      const seconds = (performance.now() - started) / 1000;
      after.getContext("2d").putImageData(toImageData(photo, width, height), 0, 0);
      $("progress").hidden = true;
      const tiles = starts(Math.max(height, info.tile[0]), info.tile[0], info.overlap).length
        * starts(Math.max(width, info.tile[1]), info.tile[1], info.overlap).length;
      $("status").textContent = `${width}x${height} restored in ${seconds.toFixed(2)} s (${tiles} tiles, ${(seconds / tiles * 1000).toFixed(0)} ms each)`;
      window.restoreSeconds = seconds; window.restoreTiles = tiles; window.restoreDone = true;
    } catch (err) {
      const message = err instanceof RangeError || /memory/i.test(String(err))
        ? `${width}x${height} is too large for this browser's memory; try a smaller photo`
        : `restoring failed: ${err.message || err}`;
      fail(message);
    }
  });
}

main();
