"""The peer side of ``benchmarks/ltv.py --lifetimes PYTHON``: run by an interpreter that has
the lifetimes package (0.11.3, unmaintained since 2020; never a dependency of omnicdp), it
times lifetimes' RFM summary of the same transaction table and its BG/NBD and Gamma-Gamma
fits on the same summary omnicdp fitted, and prints the parameters as JSON.

    PYTHON benchmarks/ltv_lifetimes_peer.py TRANSACTIONS.parquet SUMMARY.parquet CAL_END

It imports nothing of omnicdp.
"""

from __future__ import annotations

import json
import sys
import time

import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data


def main() -> None:
    transactions_path, summary_path, calibration_end = sys.argv[1:4]
    transactions = pd.read_parquet(transactions_path)
    transactions = transactions[transactions["timestamp"] <= calibration_end]
    started = time.perf_counter()
    # Days, then weeks (freq_multiplier), purchases on one day counted once, as omnicdp.
    summary_data_from_transaction_data(transactions, "customer_id", "timestamp",
                                       monetary_value_col="amount",
                                       observation_period_end=calibration_end, freq="D",
                                       freq_multiplier=7)
    summary_seconds = time.perf_counter() - started
    ours = pd.read_parquet(summary_path)
    started = time.perf_counter()
    bgnbd = BetaGeoFitter(penalizer_coef=0.0).fit(ours["frequency"], ours["recency"], ours["T"])
    bgnbd_seconds = time.perf_counter() - started
    repeat = ours[(ours["frequency"] > 0) & (ours["monetary_value"] > 0)]
    started = time.perf_counter()
    spend = GammaGammaFitter(penalizer_coef=0.0).fit(repeat["frequency"],
                                                     repeat["monetary_value"])
    spend_seconds = time.perf_counter() - started
    print(json.dumps({
        "summary_seconds": summary_seconds, "bgnbd_seconds": bgnbd_seconds,
        "gamma_gamma_seconds": spend_seconds,
        "bgnbd": {k: float(v) for k, v in bgnbd.params_.items()},
        "gamma_gamma": {k: float(v) for k, v in spend.params_.items()},
    }))


if __name__ == "__main__":
    main()
