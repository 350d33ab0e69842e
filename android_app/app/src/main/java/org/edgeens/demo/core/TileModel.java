package org.edgeens.demo.core;

/** A restoration model as the tiler sees it: a fixed input size and a function of one CHW float tile. */
public interface TileModel {
    /** Height of the tile the model takes (an exported program has a fixed input size). */
    int tileHeight();

    /** Width of the tile the model takes. */
    int tileWidth();

    /** Restores one tile: {@code chw} holds 3 planes of {@code height * width} floats in [0, 1], R then G then B. */
    float[] run(float[] chw, int height, int width) throws Exception;
}
