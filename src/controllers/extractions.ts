import { Router } from 'express';

export const extractionsRouter = Router();
