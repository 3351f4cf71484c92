"""Unit conversions (CODATA 2018), the only place in tnq that knows them.

Inside stores and models the units are Å (length), eV (energy) and e (charge).
"""

#: Bohr radius in Å (CODATA 2018).
BOHR_TO_ANGSTROM = 0.529177210903
#: Hartree energy in eV (CODATA 2018).
HARTREE_TO_EV = 27.211386245988
#: Hartree/bohr in eV/Å.
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM = HARTREE_TO_EV / BOHR_TO_ANGSTROM
#: kcal/mol in eV (thermochemical calorie, CODATA 2018 Avogadro constant).
KCAL_PER_MOL_TO_EV = 4184.0 / (1.602176634e-19 * 6.02214076e23)

#: The units of every quantity kind inside a store.
STORE_UNITS = {"length": "angstrom", "energy": "eV", "force": "eV/angstrom", "charge": "e"}
