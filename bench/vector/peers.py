"""`make bench-vector`, the peer side: generates the seeded dataset (clustered float32 vectors,
queries drawn near the same centres, exact top-10 ground truth from FAISS IndexFlatL2), writes it
as .fvecs/.ivecs for our engine, and measures FAISS IndexFlatL2, FAISS IndexHNSWFlat and hnswlib
on it with the same parameters and thread count. Prints one JSON line per engine, the same shape
as `crates/vector-index/examples/ann_bench.rs`."""

import argparse
import json
import os
import sys
import time

import numpy as np


def rss_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def write_vecs(path, array, dtype):
    array = np.ascontiguousarray(array, dtype=dtype)
    count, dimension = array.shape
    with open(path, "wb") as out:
        header = np.full((count, 1), dimension, dtype=np.int32).view(dtype)
        np.hstack([header, array]).tofile(out)


def generate(args):
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(0.0, 1.0, size=(args.clusters, args.dimension)).astype(np.float32)
    labels = rng.integers(0, args.clusters, size=args.base)
    base = centres[labels] + rng.normal(0.0, 0.25, size=(args.base, args.dimension)).astype(np.float32)
    query_labels = rng.integers(0, args.clusters, size=args.queries)
    queries = centres[query_labels] + rng.normal(0.0, 0.25, size=(args.queries, args.dimension)).astype(np.float32)
    return base.astype(np.float32), queries.astype(np.float32)


def recall_at_10(found, truth):
    hits = 0
    for row_found, row_truth in zip(found, truth):
        hits += len(set(int(i) for i in row_found[:10]) & set(int(i) for i in row_truth[:10]))
    return hits / (10 * len(truth))


def time_queries(search_one, search_all, queries):
    started = time.perf_counter()
    for query in queries:
        search_one(query.reshape(1, -1))
    single_s = time.perf_counter() - started
    started = time.perf_counter()
    found = search_all(queries)
    batch_s = time.perf_counter() - started
    return len(queries) / single_s, len(queries) / batch_s, found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--base", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--dimension", type=int, default=128)
    parser.add_argument("--clusters", type=int, default=256)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef-search", type=int, default=64)
    args = parser.parse_args()

    import faiss
    import hnswlib

    faiss.omp_set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    base, queries = generate(args)
    exact = faiss.IndexFlatL2(args.dimension)
    exact.add(base)
    _, truth = exact.search(queries, 10)
    write_vecs(os.path.join(args.out, "base.fvecs"), base, np.float32)
    write_vecs(os.path.join(args.out, "queries.fvecs"), queries, np.float32)
    write_vecs(os.path.join(args.out, "truth.ivecs"), truth.astype(np.int32), np.int32)
    del exact

    results = []

    before = rss_bytes()
    started = time.perf_counter()
    flat = faiss.IndexFlatL2(args.dimension)
    flat.add(base)
    build_s = time.perf_counter() - started
    memory = rss_bytes() - before
    single, batch, found = time_queries(lambda q: flat.search(q, 10), lambda qs: flat.search(qs, 10)[1], queries)
    results.append({"engine": "faiss-flat", "build_s": build_s, "qps_single": single, "qps_batch": batch,
                    "recall_at_10": recall_at_10(found, truth), "memory_bytes": memory})
    del flat

    before = rss_bytes()
    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(args.dimension, args.m)
    hnsw.hnsw.efConstruction = args.ef_construction
    hnsw.add(base)
    build_s = time.perf_counter() - started
    memory = rss_bytes() - before
    hnsw.hnsw.efSearch = args.ef_search
    single, batch, found = time_queries(lambda q: hnsw.search(q, 10), lambda qs: hnsw.search(qs, 10)[1], queries)
    results.append({"engine": "faiss-hnsw", "build_s": build_s, "qps_single": single, "qps_batch": batch,
                    "recall_at_10": recall_at_10(found, truth), "memory_bytes": memory})
    del hnsw

    before = rss_bytes()
    started = time.perf_counter()
    index = hnswlib.Index(space="l2", dim=args.dimension)
    index.init_index(max_elements=len(base), M=args.m, ef_construction=args.ef_construction, random_seed=args.seed)
    index.add_items(base, np.arange(len(base)), num_threads=args.threads)
    build_s = time.perf_counter() - started
    memory = rss_bytes() - before
    index.set_ef(args.ef_search)
    index.set_num_threads(args.threads)
    single, batch, found = time_queries(
        lambda q: index.knn_query(q, k=10, num_threads=1),
        lambda qs: index.knn_query(qs, k=10, num_threads=args.threads)[0],
        queries,
    )
    results.append({"engine": "hnswlib", "build_s": build_s, "qps_single": single, "qps_batch": batch,
                    "recall_at_10": recall_at_10(found, truth), "memory_bytes": memory})

    for result in results:
        print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
