"""What the PyTorch sides of attn-bench share: importing torch and announcing what runs."""
import os
import sys


def import_torch():
    """torch, after the INFO line that names version and threads; None (with an ERROR line) when
    torch cannot be imported, which attn-bench reads as "no PyTorch comparison"."""
    try:
        import torch
    except Exception as e:  # noqa: BLE001  (any import failure means: no torch comparison)
        print(f"ERROR torch is not importable: {type(e).__name__}: {e}", flush=True)
        return None
    # attn-bench --threads passes its count through OMP_NUM_THREADS, which torch reads at import
    how = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}" if "OMP_NUM_THREADS" in os.environ else "default"
    print(f"INFO torch {torch.__version__}, {torch.get_num_threads()} intra-op threads ({how}), "
          f"{sys.executable}", flush=True)
    return torch
