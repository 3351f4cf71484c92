"""AM1-BCC charges predicted by the OpenFF NAGL graph network (openff-gnn-am1bcc-1.0.0), batched.

Optional extra ``nagl`` (acellera-openff-nagl, openff-nagl-models, pytorch-lightning). The model is loaded once
per process; a chunk of molecules is featurised and run through the network as one batched graph. NAGL has no
public batch API, so this follows what ``GNNModel.compute_properties`` does per molecule (split into
fragments, lookup table first, then the network) using its graph and batch classes; a test checks the result
against one ``compute_property`` call per molecule.
"""

from functools import lru_cache

import numpy as np

from tnq_data.charges.base import ChargeFailure, ChargeUnit, Scheme, conserve_charge, one_line
from tnq_data.charges.molecule import openff_molecule_errors, unit_mol
from tnq_data.charges.tools import package_versions
from tnq_core.errors import TnqError

MODEL = "openff-gnn-am1bcc-1.0.0.pt"
READOUT = "am1bcc_charges"


@lru_cache(maxsize=1)
def load_model() -> "openff.nagl.GNNModel":  # noqa: F821
    """The NAGL model, loaded once per process (about 1 s)."""
    from openff.nagl import GNNModel
    from openff.nagl_models import validate_nagl_model_path

    return GNNModel.load(validate_nagl_model_path(MODEL), eval_mode=True)


class Nagl(Scheme):
    """NAGL's graph-network approximation of AM1-BCC (closed shells; H C N O F P S Cl Br I, common ions)."""

    name = "nagl"
    version = "1"
    chunk_size = 64
    method = MODEL.removesuffix(".pt")

    def tools(self) -> dict[str, str]:
        return {"nagl-model": MODEL,
                **package_versions("openff-nagl", "openff-nagl-models", "openff-toolkit", "rdkit", needed_by=self.name)}

    def check_available(self) -> None:
        try:
            import openff.nagl  # noqa: F401
            import openff.nagl_models  # noqa: F401
        except ImportError as err:
            raise TnqError(f"scheme nagl needs the optional extra: pip install 'tnq[nagl]' ({err})") from err
        self.tools()

    def warm_up(self) -> None:
        load_model()

    def compute(self, unit: ChargeUnit) -> np.ndarray:
        [result] = self.compute_many([unit])
        if isinstance(result, ChargeFailure):
            raise result
        return result

    def compute_many(self, units: list[ChargeUnit]) -> list[np.ndarray | ChargeFailure]:
        """Charges (N,) or the failure per unit; all fragments not in the lookup table go in one batch.

        What RDKit, OpenFF or NAGL's featurisation reject for a molecule is its `ChargeFailure`; any other error
        is raised (a failure of the set-up, which stops the run).
        """
        import torch
        from openff.nagl.molecule._graph.molecule import GraphMolecule
        from openff.nagl.toolkits.openff import split_up_molecule

        model = load_model()
        results: list = [None] * len(units)
        charges: list[np.ndarray] = []
        graphs, places = [], []   # per batched fragment: its graph and (unit, atom indices)
        for i, unit in enumerate(units):
            charges.append(np.empty(0))
            try:
                molecule = _openff_molecule(unit)
                q = np.full(molecule.n_atoms, np.nan)
                fragments, indices = split_up_molecule(molecule)
                mine = []
                for fragment, index in zip(fragments, indices):
                    try:
                        q[index] = model._check_property_lookup_table(fragment, READOUT).numpy()
                    except KeyError:
                        mine.append((GraphMolecule.from_openff(fragment, atom_features=model.config.atom_features,
                                                               bond_features=model.config.bond_features),
                                     (i, index)))
            except ChargeFailure as err:
                results[i] = err
                continue
            except (*openff_molecule_errors(), ValueError) as err:  # NAGL's featurisers reject unknown elements
                results[i] = ChargeFailure(one_line(err))
                continue
            charges[i] = q
            graphs += [graph for graph, _ in mine]
            places += [place for _, place in mine]
        if graphs:
            with torch.no_grad():
                values = model.forward(_batch(graphs))[READOUT].numpy().reshape(-1)
            bounds = np.cumsum([0] + [len(index) for _, index in places])
            for (i, index), lo, hi in zip(places, bounds[:-1], bounds[1:]):
                charges[i][index] = values[lo:hi]
        for i, unit in enumerate(units):
            if results[i] is None:
                try:
                    results[i] = conserve_charge(charges[i], unit.total_charge)
                except ChargeFailure as err:
                    results[i] = err
        return results


def _openff_molecule(unit: ChargeUnit) -> "openff.toolkit.Molecule":  # noqa: F821
    """The OpenFF molecule of a closed-shell unit, atoms in store order."""
    from openff.toolkit import Molecule

    if unit.multiplicity != 1:
        raise ChargeFailure(f"NAGL AM1-BCC needs a closed-shell singlet, got multiplicity {unit.multiplicity}")
    rdmol = unit_mol(unit.smiles, unit.z, unit.total_charge)
    return Molecule.from_rdkit(rdmol, allow_undefined_stereo=True, hydrogens_are_explicit=True)


def _batch(graphs: list) -> object:
    """One graph batch of NAGL molecule graphs; NAGL's own batch class lacks the homograph view its network
    asks for, which this adds."""
    from openff.nagl.molecule._graph.molecule import GraphMoleculeBatch

    class Batch(GraphMoleculeBatch):
        def to_homogenous(self):
            return self.graph.to_homogeneous()

    return Batch.from_nx_molecules(graphs)
