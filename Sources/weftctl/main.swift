print("weftctl")
