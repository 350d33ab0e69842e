package org.edgeens.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class TilingTest {
    @Test
    void tilesCoverTheLengthAndTheLastOneEndsAtTheEdge() {
        assertArrayEquals(new int[] {0}, Tiling.starts(20, 32, 8));
        assertArrayEquals(new int[] {0, 24, 48, 68}, Tiling.starts(100, 32, 8));
        assertArrayEquals(new int[] {0, 32}, Tiling.starts(64, 32, 0));
    }

    @Test
    void rampIsZeroOverTheOuterQuarterThenRisesAndIsOneInside() {
        float[] ramp = Tiling.ramp(16, 8, true, true);
        assertEquals(0f, ramp[0]);
        assertEquals(0f, ramp[1]);
        assertEquals(0.125f, ramp[2]);
        assertEquals(0.875f, ramp[5]);
        assertEquals(1f, ramp[6]);
        assertEquals(1f, ramp[7]);
        for (int i = 0; i < 16; i++) {
            assertEquals(ramp[i], ramp[15 - i], "symmetric at " + i);
        }
        float[] inner = Tiling.ramp(16, 8, false, false);
        for (float w : inner) {
            assertEquals(1f, w);
        }
    }
}
