"""The SparkSession factory: one place that knows how pria-ml runs Spark.

``local[*]`` by default; any cluster by setting ``PRIA_SPARK_MASTER``. The settings applied here
are the ones the feature job needs on a small machine and that are harmless on a cluster.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
from importlib import resources
from typing import TYPE_CHECKING

from pria_ml import noise

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from pria_ml.settings import Settings


def local_cores(master: str) -> int | None:
    """Cores a ``local[...]`` master uses, or None for a cluster master."""
    match = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if match is None:
        return None
    count = match.group(1)
    if count is None:
        return 1
    if count == "*":
        return os.cpu_count() or 1
    return int(count)


def session(settings: Settings, app_name: str = "pria-ml") -> SparkSession:
    """A SparkSession tuned for pria-ml's jobs.

    - master ``settings.spark_master``, driver memory ``settings.spark_driver_memory``;
    - Python workers run this interpreter (the venv's), so they import pyarrow, pandas and
      pria_ml exactly as the driver does;
    - the driver binds to loopback only when local (no port is opened to the network);
    - Arrow is on for pandas conversions; the UI is off; logs are errors only;
    - shuffle partitions: 2 per core when local (Spark's default of 200 makes 200 tiny tasks
      on a 2-core machine), left to the cluster's defaults otherwise; adaptive execution
      coalesces them further.
    """
    from pyspark.sql import SparkSession

    # Spark starts its Python workers with $PYSPARK_PYTHON (default "python3", which is not the
    # venv and has no pandas); the variable is read when the SparkContext starts.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable

    master = settings.spark_master
    log_config = resources.files("pria_ml") / "assets" / "log4j2.properties"
    options = {
        "spark.master": master,
        "spark.app.name": app_name,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"-Dlog4j.configurationFile=file:{log_config}",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "10000",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.parquet.compression.codec": "zstd",
    }
    cores = local_cores(master)
    if cores is not None:
        # Read by the JVM at launch: without it Spark resolves the hostname and may bind (and
        # warn about) a public interface.
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        options["spark.driver.bindAddress"] = "127.0.0.1"
        options["spark.driver.host"] = "127.0.0.1"
        options["spark.sql.shuffle.partitions"] = str(2 * cores)
    # py4j logs every connection it opens and closes at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    noise.drop_known_log_records()
    _start_context(options)
    builder = SparkSession.builder.config(map=options)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# Spark 4's launcher adds ``--add-modules=jdk.incubator.vector`` to every JVM it starts, and the
# JVM then warns on stderr that it uses an incubator module; no option turns that off.
_JVM_NOISE = (b"WARNING: Using incubator modules",)


def _start_context(options: dict[str, str]) -> None:
    """Start this process's SparkContext with the JVM's stderr passed through a filter that
    drops only the known harmless lines (everything else, errors included, still reaches the
    user). A process that already has a context keeps it, as ``getOrCreate`` would."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._active_spark_context is not None:
        return
    conf = SparkConf(loadDefaults=False).setAll(list(options.items()))
    # launch_gateway's popen_kwargs is pyspark's documented hook for capturing the JVM's output.
    gateway = launch_gateway(conf, popen_kwargs={"stderr": subprocess.PIPE})
    threading.Thread(
        target=_forward_stderr, args=(gateway.proc.stderr,), name="spark-stderr", daemon=True
    ).start()
    SparkContext(conf=conf, gateway=gateway)


def _forward_stderr(pipe) -> None:
    for line in iter(pipe.readline, b""):
        if not line.startswith(_JVM_NOISE):
            sys.stderr.write(line.decode(errors="replace"))
            sys.stderr.flush()
