package org.edgeens.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

class ImageTensorsTest {
    @Test
    void argbToChwAndBackIsLosslessAndPlanar() {
        int[] argb = {0xff102030, 0xffffffff, 0xff000000, 0x80ff0001};
        float[] chw = ImageTensors.argbToChw(argb, 2, 2);
        assertEquals(0x10 / 255f, chw[0]);  // R plane first
        assertEquals(0x20 / 255f, chw[4]);  // then G
        assertEquals(0x30 / 255f, chw[8]);  // then B
        int[] back = ImageTensors.chwToArgb(chw, 2, 2);
        assertArrayEquals(new int[] {0xff102030, 0xffffffff, 0xff000000, 0xffff0001}, back);  // written opaque
    }

    @Test
    void valuesAreClippedAndRoundedHalfUp() {
        assertEquals(0, ImageTensors.toByte(-0.3f));
        assertEquals(255, ImageTensors.toByte(1.7f));
        assertEquals(128, ImageTensors.toByte(127.5f / 255f));
    }

    @Test
    void aSizeThatDoesNotMatchIsRefused() {
        assertThrows(IllegalArgumentException.class, new Executable() {
            @Override
            public void execute() {
                ImageTensors.argbToChw(new int[5], 2, 2);
            }
        });
    }
}
