#!/usr/bin/env bash
# Build the demo app's signed debug APK offline (no Gradle, no Android SDK download):
#   aapt2 (resources, manifest, assets) -> javac -source 8 (app + ONNX Runtime's Java API) -> dx 10 -> the arm64-v8a
#   ONNX Runtime libraries -> zipalign -> apksigner (a debug key made by scripts/install_android.sh).
# The models are what `edgeens compile MODEL --target android-assets` put in app/src/main/assets/models/.
#   android_app/build_apk.sh [OUT.apk [ASSETS]]   (default android_app/build/apk/edgeens-demo.apk, app/src/main/assets)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TOOLS=${EDGEENS_ANDROID_TOOLS:-$HOME/.cache/edgeens/android}
OUT=${1:-$HERE/build/apk/edgeens-demo.apk}
BUILD=$HERE/build/apk-work
APP=$HERE/app/src/main
ASSETS=${2:-$APP/assets}
FRAMEWORK_RES=/usr/share/android-framework-res/framework-res.apk
MIN_SDK=26      # java.nio.file and streams in ONNX Runtime's classes need API 26
TARGET_SDK=29   # the newest API level whose framework resources Debian ships (aapt2 links against them)

say() { echo "build_apk: $*" >&2; }
fail() { say "error: $*"; exit 1; }

EDGEENS_ANDROID_TOOLS=$TOOLS bash "$HERE/../scripts/install_android.sh" || fail "the Android tools are not installed"
ANDROID_JAR=$TOOLS/root/usr/share/java/com.android.android-23.jar
DX_JAR=$TOOLS/root/usr/share/java/com.android.dx-10.0.0.jar
ORT=$TOOLS/onnxruntime-1.29.0

models=$(find "$ASSETS/models" -name '*.json' 2> /dev/null | wc -l)
[ "$models" -gt 0 ] || fail "no model in $ASSETS/models: run edgeens compile MODEL --size 256 --target android-assets"

rm -rf "$BUILD"
mkdir -p "$BUILD/gen" "$BUILD/classes" "$BUILD/apk/lib/arm64-v8a" "$(dirname "$OUT")"
start=$(date +%s%N)

# Resources, manifest and assets; ONNX files stay uncompressed (read whole into memory, no inflating twice).
aapt2 compile --dir "$APP/res" -o "$BUILD/res.zip" || fail "aapt2 compile rejected app/src/main/res"
aapt2 link -o "$BUILD/unsigned.apk" -I "$FRAMEWORK_RES" --manifest "$APP/AndroidManifest.xml" --java "$BUILD/gen" \
    -A "$ASSETS" -0 .onnx --min-sdk-version $MIN_SDK --target-sdk-version $TARGET_SDK \
    --version-code 1 --version-name 0.1.0 "$BUILD/res.zip" || fail "aapt2 link rejected the manifest or resources"

# Java 8 bytecode (dx cannot read newer class files or desugar lambdas; check.sh refuses lambdas in the sources).
javac -source 8 -target 8 -Xlint:-options -encoding UTF-8 -bootclasspath "$ANDROID_JAR" \
    -classpath "$ORT/classes-java8.jar" -d "$BUILD/classes" $(find "$APP/java" "$BUILD/gen" -name '*.java') \
    || fail "the app does not compile"
java -jar "$DX_JAR" --dex --min-sdk-version=$MIN_SDK --output="$BUILD/apk/classes.dex" \
    "$BUILD/classes" "$ORT/classes-java8.jar" || fail "dx could not convert the classes"

cp "$ORT"/jni/arm64-v8a/libonnxruntime.so "$ORT"/jni/arm64-v8a/libonnxruntime4j_jni.so "$BUILD/apk/lib/arm64-v8a/"
(cd "$BUILD/apk" && zip -q -r "$BUILD/unsigned.apk" classes.dex lib) || fail "zip failed"
zipalign -f -p 4 "$BUILD/unsigned.apk" "$BUILD/aligned.apk" || fail "zipalign failed"
apksigner sign --ks "$TOOLS/debug.keystore" --ks-pass pass:android --key-pass pass:android \
    --ks-key-alias androiddebugkey --out "$OUT" "$BUILD/aligned.apk" || fail "apksigner could not sign the APK"
rm -f "$OUT.idsig"
millis=$((($(date +%s%N) - start) / 1000000))
echo "build_apk: $OUT ($(stat -c %s "$OUT") bytes, $models model(s), built in $millis ms)"
