#!/usr/bin/env bash
# Static checks of a built APK (nothing here can run it: no device or emulator is reachable). One line per check,
# "ok" or "FAIL: why"; the exit status is the number of failures.
#   android_app/verify_apk.sh [APK]        (default android_app/build/apk/edgeens-demo.apk)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
APK=${1:-$HERE/build/apk/edgeens-demo.apk}
PACKAGE=org.edgeens.demo
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0
check() {  # check NAME COMMAND...: runs COMMAND; its stdout is kept in $WORK/NAME for later checks
    local name=$1; shift
    if "$@" > "$WORK/$name" 2>&1; then
        echo "$name: ok"
    else
        echo "$name: FAIL: $(tail -3 "$WORK/$name" | tr '\n' ' ')"
        failures=$((failures + 1))
    fi
}
[ -f "$APK" ] || { echo "apk: FAIL: $APK does not exist (run android_app/build_apk.sh)"; exit 1; }

check signature apksigner verify --verbose "$APK"
check alignment zipalign -c -p 4 "$APK"
badging() {
    aapt2 dump badging "$APK" > "$WORK/badging.txt" || return 1
    cat "$WORK/badging.txt"
    grep -q "^package: name='$PACKAGE'" "$WORK/badging.txt" || { echo "package is not $PACKAGE"; return 1; }
    grep -q "^sdkVersion:'26'" "$WORK/badging.txt" || { echo "minimum SDK is not 26"; return 1; }
    grep -q "^targetSdkVersion:'29'" "$WORK/badging.txt" || { echo "target SDK is not 29"; return 1; }
    grep -q "^launchable-activity: name='$PACKAGE.MainActivity'" "$WORK/badging.txt" \
        || { echo "no launchable MainActivity"; return 1; }
    if grep -q "uses-permission: name='android.permission.CAMERA'" "$WORK/badging.txt"; then
        echo "asks for the CAMERA permission (the camera app takes the photo)"; return 1
    fi
}
check badging badging
contents() {
    unzip -l "$APK" > "$WORK/list.txt" || return 1
    cat "$WORK/list.txt"
    for entry in classes.dex AndroidManifest.xml resources.arsc lib/arm64-v8a/libonnxruntime.so \
        lib/arm64-v8a/libonnxruntime4j_jni.so; do
        grep -q " $entry\$" "$WORK/list.txt" || { echo "$entry missing"; return 1; }
    done
    grep -qE ' assets/models/[^/]+\.onnx$' "$WORK/list.txt" || { echo "no assets/models/*.onnx"; return 1; }
    grep -qE ' assets/models/[^/]+\.json$' "$WORK/list.txt" || { echo "no assets/models/*.json"; return 1; }
}
check contents contents
dex() {
    unzip -p "$APK" classes.dex > "$WORK/classes.dex" || return 1
    dexdump "$WORK/classes.dex" 2> /dev/null | grep "Class descriptor" > "$WORK/classes.txt"
    for class in "L$(echo $PACKAGE | tr . /)/MainActivity;" "L$(echo $PACKAGE | tr . /)/OnnxModel;" \
        "L$(echo $PACKAGE | tr . /)/core/TiledRestorer;" "Lai/onnxruntime/OrtSession;" "Lai/onnxruntime/OnnxTensor;"; do
        grep -qF "$class" "$WORK/classes.txt" || { echo "$class missing from classes.dex"; return 1; }
    done
    echo "$(wc -l < "$WORK/classes.txt") classes"
    dexdump -f "$WORK/classes.dex" 2> /dev/null | grep -m1 "^DEX version"
    custom=$(dexdump -d "$WORK/classes.dex" 2> /dev/null | grep -c "invoke-custom")
    [ "$custom" = 0 ] || { echo "$custom invoke-custom instructions (lambdas crash on Android without desugaring)"; return 1; }
}
check dex dex
libraries() {
    mkdir -p "$WORK/lib"
    unzip -q -o "$APK" 'lib/*' -d "$WORK/lib" || return 1
    local count=0
    for so in $(find "$WORK/lib" -name '*.so'); do
        count=$((count + 1))
        local name=${so#$WORK/lib/}
        readelf -h "$so" | grep -q "Machine:.*AArch64" || { echo "$name is not AArch64"; return 1; }
        # Every LOAD segment aligned to 16 KB: Android 15+ devices with 16 KB pages refuse smaller alignments.
        if readelf -lW "$so" | awk '$1 == "LOAD" && $NF != "0x4000" && $NF != "0x10000" { bad = 1 } END { exit !bad }'; then
            echo "$name has a LOAD segment aligned below 16 KB"; return 1
        fi
        echo "$name: AArch64, 16 KB LOAD alignment"
    done
    [ "$count" -gt 0 ] || { echo "no native library"; return 1; }
}
check libraries libraries
exit $failures
