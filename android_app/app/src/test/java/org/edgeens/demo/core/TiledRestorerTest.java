package org.edgeens.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

class TiledRestorerTest {
    /** A model that returns its input: tiling and blending must then give back the image itself. */
    static final class Identity implements TileModel {
        final int height;
        final int width;
        int calls;

        Identity(int height, int width) {
            this.height = height;
            this.width = width;
        }

        @Override
        public int tileHeight() {
            return height;
        }

        @Override
        public int tileWidth() {
            return width;
        }

        @Override
        public float[] run(float[] chw, int h, int w) {
            calls++;
            return chw.clone();
        }
    }

    private static float[] randomImage(int width, int height, long seed) {
        Random random = new Random(seed);
        float[] chw = new float[3 * width * height];
        for (int i = 0; i < chw.length; i++) {
            chw[i] = random.nextFloat();
        }
        return chw;
    }

    @Test
    void anIdentityModelThroughOverlappingTilesGivesTheImageBack() throws Exception {
        for (int tile : new int[] {8, 16, 64}) {
            Identity model = new Identity(tile, tile);
            float[] image = randomImage(45, 30, tile);
            float[] out = new TiledRestorer(model, tile / 4).restore(image, 45, 30, null);
            for (int i = 0; i < image.length; i++) {
                assertEquals(image[i], out[i], 1e-6f, "tile " + tile + " at " + i);
            }
            int expected = Tiling.starts(Math.max(30, tile), tile, tile / 4).length
                    * Tiling.starts(Math.max(45, tile), tile, tile / 4).length;
            assertEquals(expected, model.calls);
        }
    }

    @Test
    void progressIsReportedForEveryTile() throws Exception {
        final int[] last = {0, 0};
        new TiledRestorer(new Identity(16, 16), 4).restore(randomImage(40, 20, 1), 40, 20, new TiledRestorer.Progress() {
            @Override
            public void tileDone(int done, int total) {
                last[0] = done;
                last[1] = total;
            }
        });
        assertTrue(last[1] > 1);
        assertArrayEquals(new int[] {last[1], last[1]}, last);
    }

    @Test
    void anOverlapOfHalfTheTileOrMoreIsRefused() {
        assertThrows(IllegalArgumentException.class, new Executable() {
            @Override
            public void execute() throws Exception {
                new TiledRestorer(new Identity(16, 16), 8).restore(randomImage(40, 40, 2), 40, 40, null);
            }
        });
    }
}
