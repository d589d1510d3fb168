"""python -m pinsweep -m loader.pin_memory=true,false loader.num_workers=0,8"""

from pinsweep.app import cli

cli()
