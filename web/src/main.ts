/** Entry point of the console bundle. */
import "./styles.css";
import { startConsole } from "./app.ts";

const root = document.getElementById("app");
if (root) startConsole(root);
