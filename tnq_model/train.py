"""`python -m tnq_model.train` and `torchrun ... -m tnq_model.train`: the tnq-train command in each process.

`tnq_model.train.train` is the library function (tnq_model/training.py), re-exported here.
"""

from .training import train

__all__ = ["train"]

if __name__ == "__main__":
    from .cli import main

    main()
