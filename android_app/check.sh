#!/usr/bin/env bash
# Offline check of the Android app, as CI runs it (no Gradle, no Android SDK download, no device):
#   1. installs what it needs from Debian (JUnit 5, aapt2 and the framework resources) and fetches the API-23
#      android.jar from Debian bullseye and ExecuTorch's Java API classes from npm (react-native-executorch 0.8.5),
#      cached in android_app/.tools;
#   2. links the manifest and resources with aapt2 (which also generates R.java);
#   3. compiles every Java source with javac -source 8 against android.jar and the ExecuTorch classes, and refuses
#      lambdas and method references (the sources must also build with dx, which cannot desugar them);
#   4. runs the JUnit tests of the pure-Java core, including PythonFixtureTest on the fixture that
#      write_fixture.py writes with edgeens' own restore code ($EDGEENS_FIXTURES, else written here);
#   5. prints "N passed, N failed" and exits non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TOOLS=${EDGEENS_ANDROID_TOOLS:-$HERE/.tools}
BUILD=$HERE/build/check
JAVA_LIB=/usr/share/java
FRAMEWORK_RES=/usr/share/android-framework-res/framework-res.apk
EXECUTORCH_NPM=react-native-executorch@0.8.5

say() { echo "check.sh: $*" >&2; }
fail() { say "error: $*"; echo "0 passed, 1 failed"; exit 1; }

# --- 1. tools -------------------------------------------------------------------------------------------------
missing=()
[ -f "$JAVA_LIB/junit-platform-console-standalone.jar" ] || missing+=(junit5)
command -v aapt2 > /dev/null || missing+=(aapt)
[ -f "$FRAMEWORK_RES" ] || missing+=(android-framework-res)
command -v javac > /dev/null || missing+=(default-jdk-headless)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        fail "needs the Debian packages ${missing[*]}: run as root, or apt-get install them first"
    fi
    say "installing ${missing[*]} from Debian"
    apt-get install -y --no-install-recommends "${missing[@]}" > "$TOOLS.apt.log" 2>&1 \
        || { apt-get update > /dev/null 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" \
        > "$TOOLS.apt.log" 2>&1; } || fail "apt-get install ${missing[*]} failed (see $TOOLS.apt.log)"
fi
mkdir -p "$TOOLS"

ANDROID_JAR=$TOOLS/root/usr/share/java/com.android.android-23.jar
if [ ! -f "$ANDROID_JAR" ]; then
    # Bookworm has no android.jar; bullseye's libandroid-23-java does. A private apt configuration fetches it
    # without touching the system's sources.
    say "fetching android.jar (API 23) from Debian bullseye"
    apt_dir=$TOOLS/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$TOOLS/debs"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main" \
        > "$apt_dir/sources.list"
    options=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
    apt-get "${options[@]}" update > "$TOOLS/apt-bullseye.log" 2>&1 || fail "bullseye index (see $TOOLS/apt-bullseye.log)"
    (cd "$TOOLS/debs" && apt-get "${options[@]}" download libandroid-23-java >> "$TOOLS/apt-bullseye.log" 2>&1) \
        || fail "downloading libandroid-23-java failed (see $TOOLS/apt-bullseye.log)"
    dpkg -x "$TOOLS"/debs/libandroid-23-java_*.deb "$TOOLS/root"
    [ -f "$ANDROID_JAR" ] || fail "libandroid-23-java did not contain $ANDROID_JAR"
fi

EXECUTORCH_JAR=$TOOLS/executorch-classes.jar
if [ ! -f "$EXECUTORCH_JAR" ]; then
    # The ExecuTorch 1.1 Java API (Module, Tensor, EValue), the only build on npm with its classes inside.
    say "fetching ExecuTorch's Java API classes ($EXECUTORCH_NPM) from npm"
    (cd "$TOOLS" && npm pack --silent "$EXECUTORCH_NPM" > npm-pack.log 2>&1) || fail "npm pack $EXECUTORCH_NPM failed"
    tarball=$(ls "$TOOLS"/react-native-executorch-*.tgz | head -1)
    tar -xzf "$tarball" -C "$TOOLS" package/android/libs/classes.jar
    mv "$TOOLS/package/android/libs/classes.jar" "$EXECUTORCH_JAR"
    rm -rf "$TOOLS/package" "$tarball"
fi

# --- 2. resources and manifest ---------------------------------------------------------------------------------
rm -rf "$BUILD"
mkdir -p "$BUILD/gen" "$BUILD/classes" "$BUILD/test-classes"
APP=$HERE/app/src/main
aapt2 compile --dir "$APP/res" -o "$BUILD/res.zip" || fail "aapt2 compile rejected app/src/main/res"
aapt2 link -o "$BUILD/resources.apk" -I "$FRAMEWORK_RES" --manifest "$APP/AndroidManifest.xml" \
    --java "$BUILD/gen" --min-sdk-version 24 --target-sdk-version 29 "$BUILD/res.zip" \
    || fail "aapt2 link rejected the manifest or resources"

# --- 3. compile -------------------------------------------------------------------------------------------------
sources=$(find "$APP/java" "$BUILD/gen" -name '*.java')
tests=$(find "$HERE/app/src/test/java" -name '*.java')
if grep -nE -- '->|::' $sources $tests | grep -vE '^\S+:[0-9]+:\s*(//|\*|/\*)'; then
    fail "lambdas or method references above: use anonymous classes (dx cannot desugar them)"
fi
javac -source 8 -target 8 -Xlint:-options -encoding UTF-8 -bootclasspath "$ANDROID_JAR" \
    -classpath "$EXECUTORCH_JAR" -d "$BUILD/classes" $sources || fail "the app does not compile"
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
