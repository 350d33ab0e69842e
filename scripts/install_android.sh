#!/usr/bin/env bash
# Everything the Android app's offline build (android_app/build_apk.sh) and check (android_app/check.sh) need, from
# the registries this machine reaches, into $EDGEENS_ANDROID_TOOLS (default ~/.cache/edgeens/android). Nothing is
# committed; a second run only checks that everything is there.
#   Debian bookworm: aapt2, zipalign, apksigner, dexdump, the framework resources (aapt2's -I), JUnit 5, ASM, a JDK.
#   Debian bullseye (bookworm has neither; a private apt configuration, the system's sources untouched): the API-23
#     android.jar (compile only) and dx 10, the last dexer Debian shipped.
#   npm com.github.asus4.onnxruntime@0.4.9: ONNX Runtime 1.29.0's official Android AAR (MIT); its Java 17 classes
#     are rewritten to Java 8 bytecode (android_app/tools/Java8Classes.java) because dx reads class files <= 53.
#   PyPI onnxruntime==1.29.0 (host build, in its own folder): the same runtime version checks the bundled model.
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${EDGEENS_ANDROID_TOOLS:-$HOME/.cache/edgeens/android}
ORT_NPM=com.github.asus4.onnxruntime@0.4.9
ORT_VERSION=1.29.0
ORT=$ROOT/onnxruntime-$ORT_VERSION
JAVA_LIB=/usr/share/java
say() { echo "install_android: $*" >&2; }
fail() { say "error: $*"; exit 1; }
mkdir -p "$ROOT"

# --- Debian bookworm --------------------------------------------------------------------------------------------
missing=()
command -v javac > /dev/null || missing+=(default-jdk-headless)
command -v aapt2 > /dev/null || missing+=(aapt)
command -v zipalign > /dev/null || missing+=(zipalign)
command -v apksigner > /dev/null || missing+=(apksigner)
command -v dexdump > /dev/null || missing+=(dexdump)
command -v readelf > /dev/null || missing+=(binutils)
command -v unzip > /dev/null || missing+=(unzip)
command -v zip > /dev/null || missing+=(zip)
[ -f /usr/share/android-framework-res/framework-res.apk ] || missing+=(android-framework-res)
[ -f "$JAVA_LIB/junit-platform-console-standalone.jar" ] || missing+=(junit5)
[ -f "$JAVA_LIB/asm.jar" ] || missing+=(libasm-java)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || fail "needs the Debian packages ${missing[*]}: run as root, or apt-get install them first"
    say "installing ${missing[*]} from Debian"
    apt-get install -y --no-install-recommends "${missing[@]}" > "$ROOT/apt.log" 2>&1 \
        || { apt-get update > /dev/null 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" \
        > "$ROOT/apt.log" 2>&1; } || fail "apt-get install ${missing[*]} failed (see $ROOT/apt.log)"
fi

# --- Debian bullseye: android.jar and dx ------------------------------------------------------------------------
ANDROID_JAR=$ROOT/root/usr/share/java/com.android.android-23.jar
DX_JAR=$ROOT/root/usr/share/java/com.android.dx-10.0.0.jar
if [ ! -f "$ANDROID_JAR" ] || [ ! -f "$DX_JAR" ]; then
    say "fetching android.jar (API 23) and dx 10 from Debian bullseye"
    apt_dir=$ROOT/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$ROOT/debs"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main" \
        > "$apt_dir/sources.list"
    options=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
    apt-get "${options[@]}" update > "$ROOT/apt-bullseye.log" 2>&1 || fail "bullseye index (see $ROOT/apt-bullseye.log)"
    (cd "$ROOT/debs" && apt-get "${options[@]}" download libandroid-23-java dalvik-exchange >> "$ROOT/apt-bullseye.log" 2>&1) \
        || fail "downloading libandroid-23-java and dalvik-exchange failed (see $ROOT/apt-bullseye.log)"
    for deb in "$ROOT"/debs/*.deb; do dpkg -x "$deb" "$ROOT/root"; done
    [ -f "$ANDROID_JAR" ] && [ -f "$DX_JAR" ] || fail "the bullseye packages did not contain android.jar and dx"
fi

# --- ONNX Runtime's Android library -----------------------------------------------------------------------------
if [ ! -f "$ORT/classes-java8.jar" ] || [ ! -f "$ORT/jni/arm64-v8a/libonnxruntime.so" ]; then
    say "fetching ONNX Runtime $ORT_VERSION for Android ($ORT_NPM, 150 MB) from npm"
    scratch=$(mktemp -d "$ROOT/ort.XXXXXX")
    (cd "$scratch" && npm pack --silent "$ORT_NPM" > npm-pack.log 2>&1) || fail "npm pack $ORT_NPM failed"
    tar -xzf "$scratch"/*.tgz -C "$scratch" package/Plugins/Android/onnxruntime.aar package/LICENSE
    mkdir -p "$scratch/aar" "$scratch/tools"
    unzip -q -o "$scratch/package/Plugins/Android/onnxruntime.aar" classes.jar 'jni/arm64-v8a/*' -d "$scratch/aar"
    javac -source 8 -target 8 -Xlint:-options -classpath "$JAVA_LIB/asm.jar" -d "$scratch/tools" \
        "$HERE/android_app/tools/Java8Classes.java"
    java -classpath "$JAVA_LIB/asm.jar:$scratch/tools" Java8Classes "$scratch/aar/classes.jar" \
        "$scratch/aar/classes-java8.jar" >&2 || fail "rewriting ONNX Runtime's classes to Java 8 failed"
    rm -rf "$ORT" && mkdir -p "$ORT"
    mv "$scratch/aar/classes-java8.jar" "$scratch/aar/jni" "$ORT/"
    mv "$scratch/package/LICENSE" "$ORT/LICENSE"
    rm -rf "$scratch"
fi
if [ ! -f "$ORT/python/onnxruntime/__init__.py" ]; then
    say "installing onnxruntime==$ORT_VERSION (host build) into $ORT/python"
    python3 -m pip install --quiet --no-deps --target "$ORT/python" "onnxruntime==$ORT_VERSION" \
        || fail "pip install onnxruntime==$ORT_VERSION failed"
fi

# --- A debug signing key (made here, never committed) -------------------------------------------------------------
if [ ! -f "$ROOT/debug.keystore" ]; then
    keytool -genkeypair -keystore "$ROOT/debug.keystore" -storepass android -keypass android -alias androiddebugkey \
        -keyalg RSA -keysize 2048 -validity 10000 -dname "CN=Android Debug,O=Android,C=US" > /dev/null 2>&1 \
        || fail "keytool could not make the debug key"
fi
