package org.edgeens.demo;

import android.app.Activity;
import android.content.ContentValues;
import android.content.Intent;
import android.content.pm.PackageManager;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.net.Uri;
import android.os.Build;
import android.os.Bundle;
import android.os.Handler;
import android.os.Looper;
import android.os.SystemClock;
import android.provider.MediaStore;
import android.view.View;
import android.widget.ArrayAdapter;
import android.widget.Button;
import android.widget.ImageView;
import android.widget.Spinner;
import android.widget.TextView;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.edgeens.demo.core.ImageTensors;
import org.edgeens.demo.core.TiledRestorer;

/**
 * Take a photo (camera intent) or pick one, choose a bundled model, and see the restored photo beside the original
 * with the on-device latency. Inference runs on a worker thread; every failure is shown on screen.
 */
public class MainActivity extends Activity {
    private static final int TAKE_PHOTO = 1;
    private static final int PICK_PHOTO = 2;
    private static final int STORAGE = 3;  // the request code of Android 8-9's storage permission prompt
    private static final int OVERLAP = 32;  // as `edgeens restore`'s default
    private static final int MAX_SIDE = 4096;  // larger photos are scaled down before restoring (memory)

    private final ExecutorService worker = Executors.newSingleThreadExecutor();
    private final Handler ui = new Handler(Looper.getMainLooper());
    private final List<ModelInfo> models = new ArrayList<ModelInfo>();
    private Uri photoUri;
    private ImageView original;
    private ImageView restored;
    private TextView status;
    private Spinner modelChoice;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        original = (ImageView) findViewById(R.id.original);
        restored = (ImageView) findViewById(R.id.restored);
        status = (TextView) findViewById(R.id.status);
        modelChoice = (Spinner) findViewById(R.id.model);
        loadCatalog();
        ((Button) findViewById(R.id.take)).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View view) {
                takePhoto();
            }
        });
        ((Button) findViewById(R.id.pick)).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View view) {
                Intent intent = new Intent(Intent.ACTION_GET_CONTENT);
                intent.setType("image/*");
                startActivityForResult(intent, PICK_PHOTO);
            }
        });
    }

    private void loadCatalog() {
        try {
            String[] files = getAssets().list("models");
            if (files != null) {
                for (String file : files) {
                    if (file.endsWith(".json")) {
                        String name = file.substring(0, file.length() - 5);
                        models.add(ModelInfo.parse(name, new String(readAll(getAssets().open("models/" + file)), "UTF-8")));
                    }
                }
            }
        } catch (Exception error) {
            show("cannot read the bundled models: " + error.getMessage());
        }
        if (models.isEmpty()) {
            show("no model bundled: run `edgeens compile MODEL --target android-assets` and rebuild the app");
        }
        modelChoice.setAdapter(new ArrayAdapter<ModelInfo>(this, android.R.layout.simple_spinner_item, models));
    }

    private void takePhoto() {
        // Before Android 10, adding a MediaStore entry needs the storage permission (declared up to API 28 only).
        if (Build.VERSION.SDK_INT < 29
                && checkSelfPermission("android.permission.WRITE_EXTERNAL_STORAGE") != PackageManager.PERMISSION_GRANTED) {
            requestPermissions(new String[] {"android.permission.WRITE_EXTERNAL_STORAGE"}, STORAGE);
            return;
        }
        // The camera app writes the full-size photo to a MediaStore entry: no CAMERA permission needed here.
        ContentValues values = new ContentValues();
        values.put(MediaStore.Images.Media.DISPLAY_NAME, "edgeens-" + System.currentTimeMillis() + ".jpg");
        values.put(MediaStore.Images.Media.MIME_TYPE, "image/jpeg");
        photoUri = getContentResolver().insert(MediaStore.Images.Media.EXTERNAL_CONTENT_URI, values);
        Intent intent = new Intent(MediaStore.ACTION_IMAGE_CAPTURE);
        intent.putExtra(MediaStore.EXTRA_OUTPUT, photoUri);
        if (intent.resolveActivity(getPackageManager()) == null) {
            show("no camera app on this device: pick a photo instead");
            return;
        }
        startActivityForResult(intent, TAKE_PHOTO);
    }

    @Override
    public void onRequestPermissionsResult(int requestCode, String[] permissions, int[] results) {
        if (requestCode != STORAGE) {
            return;
        }
        if (results.length > 0 && results[0] == PackageManager.PERMISSION_GRANTED) {
            takePhoto();
        } else {
            show("without storage access the camera app cannot hand over its photo: pick a photo instead");
        }
    }

    @Override
    protected void onActivityResult(int requestCode, int resultCode, Intent data) {
        super.onActivityResult(requestCode, resultCode, data);
        if (resultCode != RESULT_OK) {
            return;
        }
        Uri uri = requestCode == TAKE_PHOTO ? photoUri : (data == null ? null : data.getData());
        if (uri == null) {
            show("no photo came back");
            return;
        }
        if (models.isEmpty()) {
            show("no model bundled: run `edgeens compile MODEL --target android-assets` and rebuild the app");
            return;
        }
        restore(uri, (ModelInfo) modelChoice.getSelectedItem());
    }

    private void restore(final Uri uri, final ModelInfo info) {
        show("restoring with " + info + " ...");
        worker.execute(new Runnable() {
            @Override
            public void run() {
                OnnxModel model = null;
                try {
                    final Bitmap photo = decode(uri);
                    ui.post(new Runnable() {
                        @Override
                        public void run() {
                            original.setImageBitmap(photo);
                        }
                    });
                    model = new OnnxModel(modelBytes(info), info);
                    int width = photo.getWidth();
                    int height = photo.getHeight();
                    int[] pixels = new int[width * height];
                    photo.getPixels(pixels, 0, width, 0, 0, width, height);
                    long start = SystemClock.elapsedRealtime();
                    float[] output = new TiledRestorer(model, OVERLAP).restore(
                            ImageTensors.argbToChw(pixels, width, height), width, height,
                            new TiledRestorer.Progress() {
                                @Override
                                public void tileDone(int done, int total) {
                                    show("restoring: tile " + done + " of " + total);
                                }
                            });
                    final long millis = SystemClock.elapsedRealtime() - start;
                    final Bitmap result = Bitmap.createBitmap(
                            ImageTensors.chwToArgb(output, width, height), width, height, Bitmap.Config.ARGB_8888);
                    ui.post(new Runnable() {
                        @Override
                        public void run() {
                            restored.setImageBitmap(result);
                        }
                    });
                    show(info.name + ": " + width + "x" + height + " restored in " + millis + " ms on this device");
                } catch (OutOfMemoryError error) {
                    show("out of memory: choose a smaller photo or a model with smaller tiles");
                } catch (UnsupportedImageException error) {
                    show(error.getMessage());
                } catch (Throwable error) {
                    show("restoration failed: " + error);
                } finally {
                    if (model != null) {
                        try {
                            model.close();
                        } catch (Exception error) {
                            show("closing the model failed: " + error);
                        }
                    }
                }
            }
        });
    }

    /** The photo as an ARGB bitmap, scaled down (by powers of two) until its longer side is at most MAX_SIDE. */
    private Bitmap decode(Uri uri) throws IOException, UnsupportedImageException {
        BitmapFactory.Options bounds = new BitmapFactory.Options();
        bounds.inJustDecodeBounds = true;
        InputStream probe = getContentResolver().openInputStream(uri);
        try {
            BitmapFactory.decodeStream(probe, null, bounds);
        } finally {
            probe.close();
        }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
            throw new UnsupportedImageException("unsupported image: Android cannot decode " + uri);
        }
        BitmapFactory.Options options = new BitmapFactory.Options();
        options.inPreferredConfig = Bitmap.Config.ARGB_8888;
        options.inSampleSize = 1;
        while (Math.max(bounds.outWidth, bounds.outHeight) / options.inSampleSize > MAX_SIDE) {
            options.inSampleSize *= 2;
        }
        InputStream stream = getContentResolver().openInputStream(uri);
        try {
            Bitmap bitmap = BitmapFactory.decodeStream(stream, null, options);
            if (bitmap == null) {
                throw new UnsupportedImageException("unsupported image: Android cannot decode " + uri);
            }
            return bitmap;
        } finally {
            stream.close();
        }
    }

    /** The bundled ONNX file's bytes (ONNX Runtime reads a model from memory: nothing is copied out). */
    private byte[] modelBytes(ModelInfo info) throws IOException {
        InputStream in;
        try {
            in = getAssets().open("models/" + info.model);
        } catch (IOException missing) {
            throw new IOException("model missing: assets/models/" + info.model + " is not in the app");
        }
        try {
            return readAll(in);
        } finally {
            in.close();
        }
    }

    private static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        byte[] buffer = new byte[1 << 16];
        int count;
        while ((count = in.read(buffer)) > 0) {
            bytes.write(buffer, 0, count);
        }
        return bytes.toByteArray();
    }

    private void show(final String message) {
        ui.post(new Runnable() {
            @Override
            public void run() {
                status.setText(message);
            }
        });
    }

    @Override
    protected void onDestroy() {
        worker.shutdownNow();
        super.onDestroy();
    }

    private static final class UnsupportedImageException extends Exception {
        UnsupportedImageException(String message) {
            super(message);
        }
    }
}
