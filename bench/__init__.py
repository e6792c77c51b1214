"""fastnn's benchmarks, each runnable as ``python -m bench.<name>``.

Results go to ``bench/RESULTS.md``, one ``## <Name>`` section per benchmark,
written with :func:`bench._common.update_results_section` so that running one
benchmark never clobbers another's figures. Shared timing helpers (medians and
ranges over repeats, warm-up, thread limits for NumPy's BLAS) live in
:mod:`bench._common`.
"""
