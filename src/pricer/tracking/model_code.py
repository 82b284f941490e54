"""The file MLflow runs to load a logged pricer model (models-from-code: nothing is unpickled).

``pricer.tracking.pyfunc.log_pyfunc_model`` passes this file's path as ``python_model``; MLflow
copies it into the logged model and executes it on ``mlflow.pyfunc.load_model``. Not for importing.
"""

import mlflow

from pricer.tracking.pyfunc import PricerModel

mlflow.models.set_model(PricerModel())
