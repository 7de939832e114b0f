"""The SparkSession factory: the settings build-features relies on."""

from __future__ import annotations

import os
import sys

import pytest

from pria_ml.data.spark import local_cores


def test_session_runs_workers_on_this_interpreter_bound_to_loopback(spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.master") == "local[2]"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.driver.memory") == "2g"  # Settings.spark_driver_memory's default
    assert conf.get("spark.ui.enabled") == "false"
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert os.environ["PYSPARK_PYTHON"] == sys.executable

    def worker_python(batches):
        import pyarrow as pa

        for _ in batches:
            yield pa.RecordBatch.from_pydict({"exe": [sys.executable]})

    (row,) = spark.range(1, numPartitions=1).mapInArrow(worker_python, "exe string").collect()
    assert row["exe"] == sys.executable


@pytest.mark.parametrize(
    ("master", "cores"),
    [("local", 1), ("local[3]", 3), ("local[*]", os.cpu_count()), ("local[2, 4]", 2)],
)
def test_local_masters_count_their_cores(master, cores):
    assert local_cores(master) == cores


def test_cluster_masters_are_not_local():
    assert local_cores("spark://head:7077") is None
    assert local_cores("k8s://https://api:6443") is None
