"""The SparkSession factory: one place that knows how pria-ml runs Spark.

``local[*]`` by default; any cluster by setting ``PRIA_SPARK_MASTER``. The settings applied here
are the ones the feature job needs on a small machine and that are harmless on a cluster.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from importlib import resources
from typing import TYPE_CHECKING

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
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j.configurationFile=file:{log_config}")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.parquet.compression.codec", "zstd")
    )
    cores = local_cores(master)
    if cores is not None:
        # Read by the JVM at launch: without it Spark resolves the hostname and may bind (and
        # warn about) a public interface.
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        builder = (
            builder.config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.sql.shuffle.partitions", str(2 * cores))
        )
    # py4j logs every connection it opens and closes at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
