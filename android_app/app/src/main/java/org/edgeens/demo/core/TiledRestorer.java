package org.edgeens.demo.core;

/**
 * Restores an image of any size with a {@link TileModel}: pads a small image up to one tile (reflection, or
 * replication where the image is too small to reflect), runs overlapping tiles, blends them with the
 * {@link Tiling#ramp} weights, crops back and clips to [0, 1]. The same algorithm, in the same float32
 * arithmetic order, as {@code edgeens.restore.restore_array}.
 */
public final class TiledRestorer {
    /** Called after each tile, e.g. to update a progress bar. */
    public interface Progress {
        void tileDone(int done, int total);
    }

    private final TileModel model;
    private final int overlap;

    public TiledRestorer(TileModel model, int overlap) {
        if (overlap < 0) {
            throw new IllegalArgumentException("overlap must be >= 0, got " + overlap);
        }
        this.model = model;
        this.overlap = overlap;
    }

    /** Restores a CHW image of {@code height x width}; returns CHW floats of the same size in [0, 1]. */
    public float[] restore(float[] chw, int width, int height, Progress progress) throws Exception {
        if (chw.length != 3 * width * height) {
            throw new IllegalArgumentException("expected 3 x " + height + " x " + width + " floats, got " + chw.length);
        }
        int tileH = model.tileHeight();
        int tileW = model.tileWidth();
        boolean tiled = height > tileH || width > tileW;
        if (tiled && overlap >= Math.min(tileH, tileW) / 2) {
            throw new IllegalArgumentException(
                    "overlap " + overlap + " must be less than half the tile (" + tileH + "x" + tileW + ")");
        }
        int wholeH = Math.max(height, tileH);
        int wholeW = Math.max(width, tileW);
        float[] image = pad(chw, width, height, wholeW, wholeH);
        float[] output = new float[3 * wholeH * wholeW];
        float[] weight = new float[wholeH * wholeW];
        int[] rows = Tiling.starts(wholeH, tileH, overlap);
        int[] cols = Tiling.starts(wholeW, tileW, overlap);
        int total = rows.length * cols.length;
        int done = 0;
        float[] piece = new float[3 * tileH * tileW];
        for (int top : rows) {
            for (int left : cols) {
                for (int c = 0; c < 3; c++) {
                    for (int y = 0; y < tileH; y++) {
                        System.arraycopy(image, (c * wholeH + top + y) * wholeW + left, piece, (c * tileH + y) * tileW, tileW);
                    }
                }
                float[] restored = model.run(piece, tileH, tileW);
                if (restored.length != piece.length) {
                    throw new IllegalStateException(
                            "the model returned " + restored.length + " values for a " + tileH + "x" + tileW + " tile");
                }
                float[] rowWeights = Tiling.ramp(tileH, overlap, top > 0, top + tileH < wholeH);
                float[] colWeights = Tiling.ramp(tileW, overlap, left > 0, left + tileW < wholeW);
                for (int y = 0; y < tileH; y++) {
                    for (int x = 0; x < tileW; x++) {
                        float w = rowWeights[y] * colWeights[x];
                        int at = (top + y) * wholeW + left + x;
                        for (int c = 0; c < 3; c++) {
                            output[c * wholeH * wholeW + at] += restored[(c * tileH + y) * tileW + x] * w;
                        }
                        weight[at] += w;
                    }
                }
                done++;
                if (progress != null) {
                    progress.tileDone(done, total);
                }
            }
        }
        float[] result = new float[3 * height * width];
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < height; y++) {
                for (int x = 0; x < width; x++) {
                    float value = output[(c * wholeH + y) * wholeW + x] / weight[y * wholeW + x];
                    result[(c * height + y) * width + x] = Math.min(1f, Math.max(0f, value));
                }
            }
        }
        return result;
    }

    /** Pads at the bottom and right up to {@code toW x toH}: reflection, or replication if the image is too small. */
    static float[] pad(float[] chw, int width, int height, int toW, int toH) {
        if (toW == width && toH == height) {
            return chw;
        }
        boolean reflect = toH - height < height && toW - width < width;
        float[] padded = new float[3 * toH * toW];
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < toH; y++) {
                int sy = source(y, height, reflect);
                for (int x = 0; x < toW; x++) {
                    padded[(c * toH + y) * toW + x] = chw[(c * height + sy) * width + source(x, width, reflect)];
                }
            }
        }
        return padded;
    }

    private static int source(int index, int length, boolean reflect) {
        if (index < length) {
            return index;
        }
        return reflect ? 2 * (length - 1) - index : length - 1;
    }
}
