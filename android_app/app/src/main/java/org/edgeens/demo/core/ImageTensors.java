package org.edgeens.demo.core;

/**
 * Pixels to model tensors and back, with the conventions of edgeens (Python): planar CHW, RGB order, values in
 * [0, 1] as {@code value / 255f}; back to 8 bits as {@code (int) (clip(v) * 255f + 0.5f)}, which is numpy's
 * {@code (np.clip(v, 0, 1) * 255 + 0.5).astype(np.uint8)} in float32.
 */
public final class ImageTensors {
    private ImageTensors() {}

    /** ARGB pixels (Android's {@code Bitmap.getPixels} layout, row-major) to a 3-plane CHW float array. */
    public static float[] argbToChw(int[] argb, int width, int height) {
        checkSize(argb.length, width, height);
        int plane = width * height;
        float[] chw = new float[3 * plane];
        for (int i = 0; i < plane; i++) {
            int pixel = argb[i];
            chw[i] = ((pixel >> 16) & 0xff) / 255f;
            chw[plane + i] = ((pixel >> 8) & 0xff) / 255f;
            chw[2 * plane + i] = (pixel & 0xff) / 255f;
        }
        return chw;
    }

    /** CHW floats to opaque ARGB pixels, clipped to [0, 1] and rounded to 8 bits. */
    public static int[] chwToArgb(float[] chw, int width, int height) {
        checkSize(chw.length / 3, width, height);
        int plane = width * height;
        int[] argb = new int[plane];
        for (int i = 0; i < plane; i++) {
            argb[i] = 0xff000000 | (toByte(chw[i]) << 16) | (toByte(chw[plane + i]) << 8) | toByte(chw[2 * plane + i]);
        }
        return argb;
    }

    /** One value in [0, 1] (clipped) to 0..255. */
    public static int toByte(float value) {
        float clipped = Math.min(1f, Math.max(0f, value));
        return (int) (clipped * 255f + 0.5f);
    }

    private static void checkSize(int pixels, int width, int height) {
        if (width <= 0 || height <= 0 || pixels != width * height) {
            throw new IllegalArgumentException(
                    "image of " + pixels + " pixels does not match " + width + "x" + height);
        }
    }
}
