import os
import pathlib
from pathlib import Path

from memcontract import Contract
from memcontract.contract import Contract as Contract2

HERE = Path(__file__).resolve().parent
GOOD = HERE / "contracts" / "good_contract.yaml"

Contract.load("contracts/good_contract.yaml", module="inventory")
Contract.load("contracts/good_contract.yaml", module="inventroy")  # expect: MC002
Contract.load("contracts/missing.yaml")  # expect: MC002
Contract.load("contracts/bad_contract.yaml", module="inventory")  # expect: MC002
Contract.load(GOOD, module="orders")
Contract.load(path=GOOD, module="nope")  # expect: MC002
Contract2.load(pathlib.Path(__file__).parent / "contracts" / "good_contract.yaml")
Contract.load(os.path.join(os.path.dirname(__file__), "contracts", "missing.yaml"))  # expect: MC002
Contract.load(str(GOOD))  # not static: not checked
Contract.from_yaml("modules: []")  # not a file reference


def dynamic(path, module):
    Contract.load(path, module=module)
    Contract.load("contracts/good_contract.yaml", module=module)
    Contract.load("contracts/nowhere.yaml", module=module)  # expect: MC002


class Look:
    @staticmethod
    def load(path, module=None):
        return None


Look.load("contracts/missing.yaml", module="x")
