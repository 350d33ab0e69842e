package org.edgeens.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;

/**
 * The Java core against the Python implementation: {@code android_app/write_fixture.py} (run by the Python test
 * {@code tests/test_android.py}) restores test images with {@code edgeens.restore.restore_array} and two simple
 * models that both languages compute in the same float32 order; this test must reproduce its floats and 8-bit
 * pixels exactly. The fixture folder comes from the system property {@code edgeens.fixtures}.
 */
class PythonFixtureTest {
    /** Per pixel: 0.5 x^2 + 0.25. */
    static final class Square extends Model {
        Square(int h, int w) {
            super(h, w);
        }

        @Override
        public float[] run(float[] chw, int h, int w) {
            float[] out = new float[chw.length];
            for (int i = 0; i < chw.length; i++) {
                out[i] = 0.5f * (chw[i] * chw[i]) + 0.25f;
            }
            return out;
        }
    }

    /** 3x3 mean with zeros outside the tile, summed in row-major neighbour order, then divided by 9. */
    static final class Box extends Model {
        Box(int h, int w) {
            super(h, w);
        }

        @Override
        public float[] run(float[] chw, int h, int w) {
            float[] out = new float[chw.length];
            for (int c = 0; c < 3; c++) {
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        float sum = 0f;
                        for (int dy = -1; dy <= 1; dy++) {
                            for (int dx = -1; dx <= 1; dx++) {
                                int sy = y + dy;
                                int sx = x + dx;
                                sum += (sy < 0 || sy >= h || sx < 0 || sx >= w) ? 0f : chw[(c * h + sy) * w + sx];
                            }
                        }
                        out[(c * h + y) * w + x] = sum / 9f;
                    }
                }
            }
            return out;
        }
    }

    abstract static class Model implements TileModel {
        private final int height;
        private final int width;

        Model(int height, int width) {
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
    }

    @Test
    void everyFixtureCaseIsReproducedExactly() throws Exception {
        String folder = System.getProperty("edgeens.fixtures");
        assertTrue(folder != null && new File(folder, "cases.txt").isFile(),
                "no Python fixture: run android_app/check.sh (it writes one) or set -Dedgeens.fixtures");
        List<String> cases = new ArrayList<String>();
        for (String line : Files.readAllLines(new File(folder, "cases.txt").toPath())) {
            if (!line.trim().isEmpty()) {
                cases.add(line.trim());
            }
        }
        assertTrue(cases.size() >= 4, "expected at least 4 fixture cases, found " + cases.size());
        for (String line : cases) {
            // <image> <model> <tile height> <tile width> <overlap> <expected stem>
            String[] f = line.split(" ");
            BufferedImage image = ImageIO.read(new File(folder, f[0]));
            int width = image.getWidth();
            int height = image.getHeight();
            int[] argb = image.getRGB(0, 0, width, height, null, 0, width);
            int tileH = Integer.parseInt(f[2]);
            int tileW = Integer.parseInt(f[3]);
            Model model = f[1].equals("square") ? new Square(tileH, tileW) : new Box(tileH, tileW);
            float[] out = new TiledRestorer(model, Integer.parseInt(f[4]))
                    .restore(ImageTensors.argbToChw(argb, width, height), width, height, null);
            float[] expected = readFloats(new File(folder, f[5] + ".f32"));
            assertEquals(expected.length, out.length, line);
            for (int i = 0; i < out.length; i++) {
                assertEquals(expected[i], out[i], 0f, line + ": value " + i);
            }
            BufferedImage png = ImageIO.read(new File(folder, f[5] + ".png"));
            assertArrayEquals(png.getRGB(0, 0, width, height, null, 0, width),
                    ImageTensors.chwToArgb(out, width, height), line + ": 8-bit pixels");
        }
    }

    private static float[] readFloats(File file) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file.toPath())).order(ByteOrder.LITTLE_ENDIAN);
        float[] values = new float[bytes.remaining() / 4];
        bytes.asFloatBuffer().get(values);
        return values;
    }
}
