package org.edgeens.demo.core;

import java.util.ArrayList;
import java.util.List;

/**
 * Where tiles start and how their outputs are weighted: the same rules as {@code edgeens restore}
 * ({@code edgeens/restore.py}: {@code _starts} and {@code _ramp}).
 */
public final class Tiling {
    private Tiling() {}

    /** Start offsets of tiles of {@code tile} pixels covering {@code length}, {@code overlap} pixels shared. */
    public static int[] starts(int length, int tile, int overlap) {
        if (length <= tile) {
            return new int[] {0};
        }
        int step = tile - overlap;
        List<Integer> starts = new ArrayList<Integer>();
        for (int start = 0; start < length - tile; start += step) {
            starts.add(start);
        }
        starts.add(length - tile);
        int[] result = new int[starts.size()];
        for (int i = 0; i < result.length; i++) {
            result[i] = starts.get(i);
        }
        return result;
    }

    /**
     * Weights along one side of a tile: 1 inside; at an edge shared with a neighbour ({@code rise} at the start,
     * {@code fall} at the end), 0 over the outer quarter of the overlap, then a linear rise over its middle half.
     */
    public static float[] ramp(int length, int overlap, boolean rise, boolean fall) {
        float[] weights = new float[length];
        java.util.Arrays.fill(weights, 1f);
        int margin = overlap / 4;
        int span = overlap - 2 * margin;
        float[] ramp = new float[overlap];
        for (int i = 0; i < overlap; i++) {
            if (i < margin) {
                ramp[i] = 0f;
            } else if (i < margin + span) {
                ramp[i] = (float) ((i - margin + 0.5) / Math.max(span, 1));  // in double, as numpy, then float32
            } else {
                ramp[i] = 1f;
            }
        }
        if (rise && overlap > 0) {
            System.arraycopy(ramp, 0, weights, 0, overlap);
        }
        if (fall && overlap > 0) {
            for (int i = 0; i < overlap; i++) {
                int at = length - overlap + i;
                weights[at] = Math.min(weights[at], ramp[overlap - 1 - i]);
            }
        }
        return weights;
    }
}
