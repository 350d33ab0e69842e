#!/usr/bin/env bash
# Offline check of the Android app, as CI runs it (no Gradle, no Android SDK download, no device):
#   1. makes sure the tools are there (scripts/install_android.sh: Debian's aapt2 and JUnit 5, bullseye's API-23
#      android.jar, ONNX Runtime 1.29.0's Java API from npm rewritten to Java 8 bytecode), cached in
#      $EDGEENS_ANDROID_TOOLS (default ~/.cache/edgeens/android);
#   2. links the manifest and resources with aapt2 (which also generates R.java);
#   3. compiles every Java source with javac -source 8 against android.jar and ONNX Runtime's classes, and refuses
#      lambdas and method references (the sources must also build with dx, which cannot desugar them);
#   4. runs the JUnit tests of the pure-Java core, including PythonFixtureTest on the fixture that
#      write_fixture.py writes with edgeens' own restore code ($EDGEENS_FIXTURES, else written here);
#   5. prints "N passed, N failed" and exits non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TOOLS=${EDGEENS_ANDROID_TOOLS:-$HOME/.cache/edgeens/android}
BUILD=$HERE/build/check
JAVA_LIB=/usr/share/java
FRAMEWORK_RES=/usr/share/android-framework-res/framework-res.apk

say() { echo "check.sh: $*" >&2; }
fail() { say "error: $*"; echo "0 passed, 1 failed"; exit 1; }

# --- 1. tools -------------------------------------------------------------------------------------------------
EDGEENS_ANDROID_TOOLS=$TOOLS bash "$HERE/../scripts/install_android.sh" || fail "the Android tools are not installed"
ANDROID_JAR=$TOOLS/root/usr/share/java/com.android.android-23.jar
ORT_JAR=$TOOLS/onnxruntime-1.29.0/classes-java8.jar

# --- 2. resources and manifest ---------------------------------------------------------------------------------
rm -rf "$BUILD"
mkdir -p "$BUILD/gen" "$BUILD/classes" "$BUILD/test-classes"
APP=$HERE/app/src/main
aapt2 compile --dir "$APP/res" -o "$BUILD/res.zip" || fail "aapt2 compile rejected app/src/main/res"
aapt2 link -o "$BUILD/resources.apk" -I "$FRAMEWORK_RES" --manifest "$APP/AndroidManifest.xml" \
    --java "$BUILD/gen" --min-sdk-version 26 --target-sdk-version 29 "$BUILD/res.zip" \
    || fail "aapt2 link rejected the manifest or resources"

# --- 3. compile -------------------------------------------------------------------------------------------------
sources=$(find "$APP/java" "$BUILD/gen" -name '*.java')
tests=$(find "$HERE/app/src/test/java" -name '*.java')
if grep -nE -- '->|::' $sources $tests | grep -vE '^\S+:[0-9]+:\s*(//|\*|/\*)'; then
    fail "lambdas or method references above: use anonymous classes (dx cannot desugar them)"
fi
javac -source 8 -target 8 -Xlint:-options -encoding UTF-8 -bootclasspath "$ANDROID_JAR" \
    -classpath "$ORT_JAR" -d "$BUILD/classes" $sources || fail "the app does not compile"
# The core has no Android imports: it also compiles and runs on the JVM alone.
if grep -l 'import android\.' "$APP"/java/org/edgeens/demo/core/*.java; then
    fail "the core above imports android.*; keep it pure Java"
fi
javac -source 8 -target 8 -Xlint:-options -encoding UTF-8 -d "$BUILD/core-classes" \
    "$APP"/java/org/edgeens/demo/core/*.java || fail "the core does not compile without android.jar"
JUNIT_CP=$JAVA_LIB/junit-jupiter-api.jar:$JAVA_LIB/apiguardian-api.jar:$JAVA_LIB/opentest4j.jar
javac -source 8 -target 8 -Xlint:-options -encoding UTF-8 -classpath "$BUILD/core-classes:$JUNIT_CP" \
    -d "$BUILD/test-classes" $tests || fail "the tests do not compile"

# --- 4. tests ---------------------------------------------------------------------------------------------------
FIXTURES=${EDGEENS_FIXTURES:-$BUILD/fixtures}
if [ -z "${EDGEENS_FIXTURES:-}" ]; then
    python=${PYTHON:-$HERE/../.venv/bin/python}
    [ -x "$python" ] || python=python3
    "$python" "$HERE/write_fixture.py" "$FIXTURES" > /dev/null || fail "write_fixture.py failed (is edgeens installed?)"
fi
set +e
java -Dedgeens.fixtures="$FIXTURES" -jar "$JAVA_LIB/junit-platform-console-standalone.jar" \
    --class-path "$BUILD/core-classes:$BUILD/test-classes" --scan-class-path --disable-banner \
    --details=tree --disable-ansi-colors > "$BUILD/junit.txt" 2>&1
status=$?
set -e
cat "$BUILD/junit.txt" >&2
passed=$(sed -nE 's/^\[ *([0-9]+) tests successful *\]/\1/p' "$BUILD/junit.txt")
failed=$(sed -nE 's/^\[ *([0-9]+) tests failed *\]/\1/p' "$BUILD/junit.txt")
echo "${passed:-0} passed, ${failed:-1} failed"
exit $status
