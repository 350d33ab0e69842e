package org.edgeens.demo;

import org.json.JSONException;
import org.json.JSONObject;

/**
 * What `edgeens compile --target android-assets` writes beside each bundled program
 * ({@code assets/models/<name>.json}): the program file, its input size and the architecture it was built from.
 */
final class ModelInfo {
    final String name;
    final String program;
    final int height;
    final int width;
    final String architecture;
    final String exporter;

    private ModelInfo(String name, String program, int height, int width, String architecture, String exporter) {
        this.name = name;
        this.program = program;
        this.height = height;
        this.width = width;
        this.architecture = architecture;
        this.exporter = exporter;
    }

    static ModelInfo parse(String name, String json) throws JSONException {
        JSONObject object = new JSONObject(json);
        JSONObject input = object.getJSONObject("input");
        return new ModelInfo(
                name,
                object.getString("program"),
                input.getInt("height"),
                input.getInt("width"),
                object.optString("architecture", "?"),
                object.optString("executorch", "?"));
    }

    @Override
    public String toString() {
        return name + " (" + architecture + ", " + width + "x" + height + " tiles)";
    }
}
