"""Ray job entrypoint for distributed training (the same as `s2s train --ray`).

    ray job submit --working-dir . -- python jobs/train.py --config configs/toy-reverse.yaml --workers 2 --data-root $PWD --out $PWD/runs/toy-ray

The job runs in an uploaded copy of the working dir that leaves out git-ignored files
(data/, runs/): --data-root says where the config's relative data paths really are (a
shared filesystem or a URI on a real cluster), and an absolute --out keeps the exported
model after the job.
"""
import argparse
import sys

from s2s.train.cli_parsers import add_ray_arguments, train_with_ray


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", help="where the best model goes (default runs/<name>)")
    add_ray_arguments(parser, ray_flag=False)
    return train_with_ray(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
