package org.edgeens.demo;

import org.edgeens.demo.core.TileModel;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;
import org.pytorch.executorch.Tensor;

/** A bundled `.pte` restoration program (one fixed input size) behind the tiler's {@link TileModel} interface. */
final class ExecuTorchModel implements TileModel {
    private final Module module;
    private final ModelInfo info;

    /** {@code path}: a real file (Module.load cannot read from the APK's assets directly). */
    ExecuTorchModel(String path, ModelInfo info) {
        this.module = Module.load(path);
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
    public float[] run(float[] chw, int height, int width) {
        Tensor input = Tensor.fromBlob(chw, new long[] {1, 3, height, width});
        EValue[] outputs = module.forward(EValue.from(input));
        return outputs[0].toTensor().getDataAsFloatArray();
    }

    void close() {
        module.destroy();
    }
}
