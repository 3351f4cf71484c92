"""The molecules of tnq's generated sample data (see docs/sample-data.md).

Two lists, both sorted and fixed: `SPICE_MOLECULES` (SPICE-layout HDF5) and `QMSPIN_CARBENES`
(QMspin-layout archive). Charges are in e; multiplicity is 2S+1.
"""

from dataclasses import dataclass

#: Subset names exactly as SPICE writes them.
PUBCHEM_SUBSET = "SPICE PubChem Set 1 Single Points Dataset v1.2"
DES_MONOMERS_SUBSET = "SPICE DES Monomers Single Points Dataset v1.1"
DIPEPTIDES_SUBSET = "SPICE Dipeptides Single Points Dataset v1.2"


@dataclass(frozen=True)
class SampleMolecule:
    """One SPICE-layout molecule.

    `name` is the HDF5 group name (PubChem CID for PubChem subsets, SMILES for DES monomers,
    `res1-res2` for capped dipeptides); `smiles` has no hydrogens and no atom maps (the generator
    adds both); `charge` (e) and `multiplicity` (2S+1) are what GFN2-xTB is run with and must agree
    with the SMILES; `mbis` says whether the group gets an `mbis_charges` dataset.
    """

    name: str
    smiles: str
    subset: str
    charge: int
    multiplicity: int
    mbis: bool


@dataclass(frozen=True)
class SampleCarbene:
    """One QMspin-layout carbene: a QM9 parent with two H removed from one carbon.

    `smiles` marks the carbene carbon with two radical electrons (e.g. ``C[CH]``); `states` lists
    which of singlet ``"s"`` and triplet ``"t"`` structures are written.
    """

    qm9_index: int
    carbene_index: int
    parent_smiles: str
    smiles: str
    states: tuple[str, ...] = ("s", "t")

    @property
    def stem(self) -> str:
        """File name without the spin state and extension, e.g. ``dsgdb9nsd_000007-1``."""
        return f"dsgdb9nsd_{self.qm9_index:06d}-{self.carbene_index}"


#: SPICE-layout molecules, sorted by group name: neutral, cations, anions and radicals in H, C, N, O, F, S.
SPICE_MOLECULES: tuple[SampleMolecule, ...] = tuple(sorted(
    (
        # PubChem subset: group name = PubChem CID of the species.
        SampleMolecule("145068", "[N]=O", PUBCHEM_SUBSET, 0, 2, True),  # nitric oxide, radical
        SampleMolecule("175", "CC(=O)[O-]", PUBCHEM_SUBSET, -1, 1, True),  # acetate
        SampleMolecule("1176", "NC(N)=O", PUBCHEM_SUBSET, 0, 1, True),  # urea
        SampleMolecule("178", "CC(N)=O", PUBCHEM_SUBSET, 0, 1, True),  # acetamide
        SampleMolecule("180", "CC(C)=O", PUBCHEM_SUBSET, 0, 1, True),  # acetone
        SampleMolecule("223", "[NH4+]", PUBCHEM_SUBSET, 1, 1, True),  # ammonium
        SampleMolecule("283", "O=C[O-]", PUBCHEM_SUBSET, -1, 1, True),  # formate
        SampleMolecule("702", "CCO", PUBCHEM_SUBSET, 0, 1, True),  # ethanol
        SampleMolecule("795", "c1c[nH]cn1", PUBCHEM_SUBSET, 0, 1, True),  # imidazole
        SampleMolecule("878", "CS", PUBCHEM_SUBSET, 0, 1, True),  # methanethiol
        SampleMolecule("887", "CO", PUBCHEM_SUBSET, 0, 1, True),  # methanol
        SampleMolecule("996", "Oc1ccccc1", PUBCHEM_SUBSET, 0, 1, True),  # phenol
        # DES monomers: group name = SMILES; no MBIS datasets (as the real DES370K group).
        SampleMolecule("C[NH3+]", "C[NH3+]", DES_MONOMERS_SUBSET, 1, 1, False),  # methylammonium
        SampleMolecule("NC(N)=[NH2+]", "NC(N)=[NH2+]", DES_MONOMERS_SUBSET, 1, 1, False),  # guanidinium
        SampleMolecule("[CH3]", "[CH3]", DES_MONOMERS_SUBSET, 0, 2, False),  # methyl radical
        SampleMolecule("[O-]c1ccccc1", "[O-]c1ccccc1", DES_MONOMERS_SUBSET, -1, 1, False),  # phenolate
        SampleMolecule("CF", "CF", DES_MONOMERS_SUBSET, 0, 1, False),  # fluoromethane
        # Dipeptides: ACE-GLY-GLY-NME.
        SampleMolecule("gly-gly", "CC(=O)NCC(=O)NCC(=O)NC", DIPEPTIDES_SUBSET, 0, 1, True),
    ),
    key=lambda m: m.name,
))

#: QMspin-layout carbenes, sorted by (QM9 index, carbene index).
QMSPIN_CARBENES: tuple[SampleCarbene, ...] = (
    SampleCarbene(1, 1, "C", "[CH2]"),  # methylene
    SampleCarbene(7, 1, "CC", "C[CH]"),  # ethylidene
    SampleCarbene(8, 1, "CO", "O[CH]"),  # hydroxymethylene
    SampleCarbene(13, 1, "CCC", "CC[CH]"),  # propylidene
    SampleCarbene(13, 2, "CCC", "C[C]C", states=("t",)),  # dimethylcarbene, triplet only
    SampleCarbene(14, 1, "CCO", "C[C]O"),  # 1-hydroxyethylidene
    SampleCarbene(14, 2, "CCO", "[CH]CO"),  # 2-hydroxyethylidene
    SampleCarbene(15, 1, "COC", "CO[CH]"),  # methoxymethylene
)
