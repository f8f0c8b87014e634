print("weft-controller")
