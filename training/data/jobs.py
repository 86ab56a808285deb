"""Runs independent jobs in worker processes (or in this process for one worker) with a progress bar."""
import multiprocessing

from tqdm import tqdm


def run_jobs(function, jobs, workers=1, desc=None, unit="job", progress=True, initializer=None):
    """Yields function(job) for every job, in completion order. function and jobs must be picklable when
    workers > 1 (processes are spawned, not forked: safe with torch and OpenCV threads)."""
    jobs = list(jobs)
    with tqdm(total=len(jobs), desc=desc, unit=unit, disable=not progress) as bar:
        if workers <= 1 or len(jobs) <= 1:
            if initializer is not None:
                initializer()
            for job in jobs:
                yield function(job)
                bar.update()
            return
        with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs)), initializer=initializer) as pool:
            for result in pool.imap_unordered(function, jobs):
                yield result
                bar.update()
            # Let the workers exit normally (their finalizers run) rather than be terminated.
            pool.close()
            pool.join()
