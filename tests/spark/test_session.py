"""The JVM's stderr reaches the user without the start-up banners nobody can act on, and the
JVM runs with the options the job needs."""

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from driftline.spark import class_archive
from driftline.spark.session import JIT_OPTIONS, JVM_BANNERS, _forward_jvm_stderr


def test_banners_are_dropped_and_everything_else_passes_in_order():
    jvm = io.BytesIO(
        b"WARNING: Using incubator modules: jdk.incubator.vector\n"
        b"26/12/04 19:30:01 WARN KafkaOffsetReaderAdmin: Error in attempt 1 getting Kafka offsets\n"
        b"Warning: Java versions > Java 11 can only operate in restricted mode where no off-heap operations "
        b"are allowed!\n"
        b'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space \xff\n'
    )
    out = io.StringIO()
    _forward_jvm_stderr(jvm, out)
    assert out.getvalue().splitlines() == [
        "26/12/04 19:30:01 WARN KafkaOffsetReaderAdmin: Error in attempt 1 getting Kafka offsets",
        'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space \ufffd',
    ]
    assert len(JVM_BANNERS) == 2


@pytest.mark.spark
def test_the_driver_jvm_compiles_huge_generated_methods(spark):
    """The session's JVM was started with the JIT option (set before the JVM starts, not
    only in the session's conf, where it would change nothing), and HotSpot took it."""
    jvm = spark.sparkContext._jvm
    arguments = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert JIT_OPTIONS in arguments
    hotspot = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    )
    assert hotspot.getVMOption("DontCompileHugeMethods").getValue() == "false"


def _mapped_archives(spark) -> set[str]:
    """The CDS archive files the session's driver JVM has mapped into memory (Linux)."""
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split()[-1] for line in maps if line.endswith(".jsa")}


@pytest.mark.spark
def test_the_driver_jvm_maps_the_class_archive_make_install_wrote(spark):
    """make install wrote the archive of this JVM and pyspark's jars, and the session's
    JVM mapped it: a JVM that finds an archive it cannot use does not map it (one built
    for another class path is refused, see the next test)."""
    if class_archive.fingerprint() is None or os.environ.get("DRIFTLINE_CLASS_ARCHIVE") == "off":
        pytest.skip("the class archive is off in this environment (class-path variable or switch)")
    path = class_archive.archive_path()
    assert path is not None and path.exists(), "make install did not write the class archive"
    assert str(path) in _mapped_archives(spark)


@pytest.mark.spark
def test_an_archive_of_another_class_path_is_ignored_without_a_word(tmp_path):
    """A driver started with an archive written for another class path (here: a
    SPARK_CONF_DIR folder) starts as without it, maps nothing of it and prints nothing
    about it (stdout is where driftline run prints its JSON)."""
    options = class_archive.java_options()
    assert options, "no class archive to test with (make install writes it)"
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "spark-defaults.conf").write_text("spark.ui.enabled false\n")
    script = (
        "import sys\n"
        "from driftline.spark.session import LOCAL_DEFAULTS, build_session\n"
        f"options = LOCAL_DEFAULTS['spark.driver.extraJavaOptions'] + ' ' + {options!r}\n"
        "spark = build_session('cds-mismatch', conf={'spark.driver.extraJavaOptions': options})\n"
        "pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()\n"
        "maps = open(f'/proc/{pid}/maps').read()\n"
        "print('mapped' if 'class-archive' in maps else 'not mapped')\n"
        "spark.stop()\n"
    )
    env = {**os.environ, "SPARK_CONF_DIR": str(folder)}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == ["not mapped"]
    assert "[cds" not in run.stdout + run.stderr  # the JVM's unified-logging tag


def test_the_archive_is_keyed_on_the_jvm_and_the_class_path(tmp_path, monkeypatch):
    """Another JDK, another jar in pyspark's folder or a jar rewritten (the JVM checks
    each jar's size and mtime) is another archive; a class-path variable or a non-empty
    Spark conf folder turns it off; no archive file, no option."""
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "a.jar").write_bytes(b"x")
    monkeypatch.setenv("SPARK_HOME", str(tmp_path))
    monkeypatch.setattr(class_archive, "archive_folder", lambda: tmp_path / "archives")
    for name in (*class_archive.CLASS_PATH_VARIABLES, "DRIFTLINE_CLASS_ARCHIVE"):
        monkeypatch.delenv(name, raising=False)
    first = class_archive.fingerprint()
    assert first is not None and class_archive.fingerprint() == first
    (jars / "b.jar").write_bytes(b"y")
    second = class_archive.fingerprint()
    assert second != first
    os.utime(jars / "a.jar", ns=(1, 1))  # same name and size, another mtime
    assert class_archive.fingerprint() not in (first, second)
    second = class_archive.fingerprint()
    java = Path(shutil.which("java")).resolve()
    fake_home = tmp_path / "jdk"
    (fake_home / "bin").mkdir(parents=True)
    (fake_home / "bin" / "java").write_bytes(java.read_bytes()[:100])
    monkeypatch.setenv("JAVA_HOME", str(fake_home))
    assert class_archive.fingerprint() not in (first, second, None)
    assert class_archive.java_options() == ""  # nothing written for it
    path = class_archive.archive_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert class_archive.java_options() == f'"-XX:SharedArchiveFile={path}" {class_archive.QUIET}'
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "spark-defaults.conf").write_text("")
    assert class_archive.fingerprint() is None and class_archive.java_options() == ""
    (tmp_path / "conf" / "spark-defaults.conf").unlink()
    assert class_archive.java_options() != ""
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    assert class_archive.fingerprint() is None and class_archive.java_options() == ""


def test_an_archive_that_cannot_be_written_never_fails_the_install(tmp_path, monkeypatch, capsys):
    """The archiving driver fails (here: a JAVA_HOME whose java is not a JVM): no archive,
    no partial file left, a message saying Spark starts without it, exit 0."""
    fake_home = tmp_path / "jdk"
    (fake_home / "bin").mkdir(parents=True)
    (fake_home / "bin" / "java").write_text("#!/bin/sh\necho 'not a JVM' >&2\nexit 3\n")
    (fake_home / "bin" / "java").chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(fake_home))
    monkeypatch.setattr(class_archive, "archive_folder", lambda: tmp_path / "archives")
    for name in (*class_archive.CLASS_PATH_VARIABLES, "DRIFTLINE_CLASS_ARCHIVE"):
        monkeypatch.delenv(name, raising=False)
    assert class_archive.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("driftline: no class archive (Spark starts without it, only slower)"), out
    assert list((tmp_path / "archives").iterdir()) == []
    assert class_archive.java_options() == ""
