# driftline: `make demo` and `make test` are the two set-up commands.
# Both create .venv when missing, install the project into it, then run.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test bench soak lint check-java maven prometheus-tools browser clean

# driftline.spark.class_archive (install): one Spark driver writes a class-data-sharing archive of
# the classes it loads (about a minute, once), so every later local driver starts seconds sooner.
# PYTHONWARNINGS: setuptools warns on every editable install about folders named like the
# package, which is nothing a user can act on
$(STAMP): pyproject.toml driftline/jvm.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "driftline needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install --quiet -e '.[dev]'
	@$(MAKE) --no-print-directory check-java maven
	$(PY) -m driftline.jvm fetch
	@touch $(STAMP)

# the class archive is checked on every install (quiet when it is there): a JDK update needs a new one
install: $(STAMP) check-java
	@$(PY) -m driftline.spark.class_archive

# pyspark 4 runs on Java 17 or 21; say how to get it rather than fail deep inside Spark.
check-java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "driftline: Java 17 is required by Spark 4 but 'java' was not found."; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless"; \
	  echo "  macOS:         brew install openjdk@17"; \
	  echo "  or set JAVA_HOME to a JDK 17 installation."; exit 1; }
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	  if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	    echo "driftline: Java 17+ is required by Spark 4, found '$$v'."; \
	    echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless"; exit 1; fi

# Maven resolves the JVM jars (Kafka connector, spark-avro, Delta Lake, the Kafka broker) from
# Maven Central into the venv (python -m driftline.jvm fetch); ~/.m2 is its download cache.
maven:
	@command -v mvn >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null; then \
	    echo "driftline: installing Maven with apt-get (it fetches the JVM jars)"; \
	    sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq \
	      --no-install-recommends maven >/dev/null; \
	  else echo "driftline: Maven ('mvn') is needed to fetch the JVM jars; install it and retry"; exit 1; fi; }

# Debian's Prometheus and Alertmanager (prometheus, promtool, prometheus-alertmanager, amtool):
# the rule unit tests, the end-to-end alert test, the demo's alert delivery and the latency
# benchmark run them on 127.0.0.1. Installed with apt-get when missing (sudo unless root).
prometheus-tools:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v amtool >/dev/null \
	    && { command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null; }; then :; \
	elif command -v apt-get >/dev/null; then \
	  echo "driftline: installing Debian's prometheus and prometheus-alertmanager with apt-get"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq \
	    --no-install-recommends prometheus prometheus-alertmanager >/dev/null; \
	else \
	  echo "driftline: prometheus, promtool, alertmanager and amtool are needed and apt-get is not available;"; \
	  echo "  install them from https://prometheus.io/download/ and put them on PATH"; exit 1; fi

# Debian's Chromium: the report test opens the HTML report in it, headless. Installed with
# apt-get when missing (sudo unless root).
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif command -v apt-get >/dev/null; then \
	  echo "driftline: installing Debian's chromium with apt-get (the report test opens the report in it)"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq \
	    --no-install-recommends chromium >/dev/null; \
	else \
	  echo "driftline: chromium is needed for the report test and apt-get is not available; install it"; exit 1; fi

# the demo goes on without Prometheus (and says so) when it cannot be installed
demo: install
	-@$(MAKE) --no-print-directory prometheus-tools
	$(VENV)/bin/driftline demo

test: install prometheus-tools browser
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install prometheus-tools
	$(PY) -m bench

# the long crash test: 20 SIGKILLs at random moments and the five named points, then every table and topic against a clean run
soak: install
	DRIFTLINE_SOAK_KILLS=20 $(PY) -m pytest -q -s tests/spark/test_crash.py

lint: install
	$(VENV)/bin/ruff check driftline tests bench jobs

clean:
	rm -rf $(VENV) .driftline demo-output .pytest_cache .hypothesis
