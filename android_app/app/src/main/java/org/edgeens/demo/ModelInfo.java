package org.edgeens.demo;

import org.json.JSONException;
import org.json.JSONObject;

/**
 * What `edgeens compile --target android-assets` writes beside each bundled model
 * ({@code assets/models/<name>.json}): the ONNX file, its input size and the architecture it was built from.
 */
final class ModelInfo {
    final String name;
    final String model;
    final int height;
    final int width;
    final String architecture;
    final String runtime;

    private ModelInfo(String name, String model, int height, int width, String architecture, String runtime) {
        this.name = name;
        this.model = model;
        this.height = height;
        this.width = width;
        this.architecture = architecture;
        this.runtime = runtime;
    }

    static ModelInfo parse(String name, String json) throws JSONException {
        JSONObject object = new JSONObject(json);
        JSONObject input = object.getJSONObject("input");
        return new ModelInfo(
                name,
                object.getString("model"),
                input.getInt("height"),
                input.getInt("width"),
                object.optString("architecture", "?"),
                object.optString("runtime", "?"));
    }

    @Override
    public String toString() {
        return name + " (" + architecture + ", " + width + "x" + height + " tiles)";
    }
}
