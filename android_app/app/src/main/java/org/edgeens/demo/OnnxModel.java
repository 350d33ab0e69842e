package org.edgeens.demo;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.util.Collections;
import org.edgeens.demo.core.TileModel;

/** A bundled ONNX restoration model (one fixed input size) in ONNX Runtime, behind the tiler's {@link TileModel}. */
final class OnnxModel implements TileModel {
    private final OrtEnvironment environment = OrtEnvironment.getEnvironment();
    private final OrtSession session;
    private final String inputName;
    private final ModelInfo info;

    /** {@code model}: the ONNX file's bytes (read from the APK's assets; the weights are inside the file). */
    OnnxModel(byte[] model, ModelInfo info) throws OrtException {
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
        this.session = environment.createSession(model, options);
        this.inputName = session.getInputNames().iterator().next();
        this.info = info;
    }

    @Override
    public int tileHeight() {
        return info.height;
    }

    @Override
    public int tileWidth() {
        return info.width;
    }

    @Override
    public float[] run(float[] chw, int height, int width) throws OrtException {
        OnnxTensor input = OnnxTensor.createTensor(environment, FloatBuffer.wrap(chw), new long[] {1, 3, height, width});
        try {
            OrtSession.Result result = session.run(Collections.singletonMap(inputName, input));
            try {
                FloatBuffer output = ((OnnxTensor) result.get(0)).getFloatBuffer();
                float[] restored = new float[output.remaining()];
                output.get(restored);
                return restored;
            } finally {
                result.close();
            }
        } finally {
            input.close();
        }
    }

    void close() throws OrtException {
        session.close();
    }
}
